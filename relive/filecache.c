/*
 * relive/filecache.c - the object files relive reads, each read once per
 * command.
 *
 * Finding an object by DT_SONAME, checking a build-id, resolving the
 * functions a patch replaces: each reads an ELF file's headers or symbol
 * table.  One `relive patch` asks several times about the same files, and
 * `relive patch --all` asks about the same libraries in every process it
 * patches.  Here each file is read once and kept, keyed by its identity
 * (device, inode, size, modification time), so a file replaced under the
 * same name is read again; one stat(2) per file and process is all that
 * is left of the I/O.
 *
 * What is returned belongs to the cache and stays valid until the command
 * ends; a file of full symbols may be dropped by a later filecache_symbols
 * call (a handful are kept), so a caller uses it before asking again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "background.h"
#include "relive.h"
#include "elfsym.h"

#define MAX_SYMBOL_FILES 8

struct cached {
	char *path;
	struct stat st;
	struct elfsym_file *f;
	unsigned epoch;            /* last checked against the file then */
	struct cached *next;
};

static struct cached *headers, *symbols;

/* Within one epoch a file is stat'ed once: `relive patch --all` starts an
 * epoch for each process, and asks about the same libraries several times
 * for it (15 stat calls per process before). */
static unsigned epoch = 1;

void filecache_epoch(void)
{
	epoch++;
}

bool filecache_same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
	       a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static void drop(struct cached *c)
{
	elfsym_close(c->f);
	free(c->path);
	free(c);
}

/* /proc/PID/map_files/LO-HI: a mapping's file, named differently in every
 * process, one file for all of them by its identity (a replaced library
 * that many processes still run, read once). */
static bool map_file(const char *path)
{
	return !strncmp(path, "/proc/", 6) && strstr(path, "/map_files/");
}

/* stat(2) of path, once per epoch: the two lists ask about the same files
 * (an object's headers, then its symbols), each for every process. */
static int epoch_stat(const char *path, struct stat *st)
{
	static struct {
		unsigned epoch;
		char *path;
		struct stat st;
	} seen[4];
	static unsigned next;
	unsigned i;

	for (i = 0; i < 4; i++)
		if (seen[i].epoch == epoch && seen[i].path &&
		    !strcmp(seen[i].path, path)) {
			*st = seen[i].st;
			return 0;
		}
	if (stat(path, st))
		return -1;
	i = next++ % 4;
	free(seen[i].path);
	seen[i].path = strdup(path);
	seen[i].epoch = seen[i].path ? epoch : 0;
	seen[i].st = *st;
	return 0;
}

/* Looks path up in *list; on a miss reads it with reader() and keeps it at
 * the head, dropping the entries past max (0: no limit). */
static const struct elfsym_file *
get(struct cached **list, const char *path, size_t max,
    int (*reader)(const char *, struct elfsym_file **, char *,
		  size_t),
    char *err, size_t errlen)
{
	struct cached **pp, *c;
	struct stat st;
	size_t n = 0;
	int rc;

	for (pp = list; (c = *pp); pp = &c->next)
		if (c->epoch == epoch && !strcmp(c->path, path)) {
			*pp = c->next;
			c->next = *list;
			*list = c;
			return c->f;
		}
	if (epoch_stat(path, &st)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	for (pp = list; (c = *pp); pp = &c->next) {
		if ((!strcmp(c->path, path) || (map_file(c->path) &&
						 map_file(path))) &&
		    filecache_same_file(&c->st, &st)) {
			c->epoch = epoch;
			*pp = c->next; /* to the head: most recently used */
			c->next = *list;
			*list = c;
			return c->f;
		}
	}
	c = calloc(1, sizeof(*c));
	if (!c || !(c->path = strdup(path))) {
		free(c);
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	rc = reader(path, &c->f, err, errlen);
	background_step(); /* a symbol table read: up to half a ms */
	if (rc) {
		drop(c);
		return NULL;
	}
	c->st = st;
	c->epoch = epoch;
	c->next = *list;
	*list = c;
	for (pp = list; max && (c = *pp); pp = &c->next)
		if (++n > max) {
			*pp = NULL;
			while (c) {
				struct cached *next = c->next;

				drop(c);
				c = next;
			}
			break;
		}
	return (*list)->f;
}

bool filecache_identity(const struct elfsym_file *f, struct stat *st)
{
	const struct cached *c;

	for (c = symbols; c; c = c->next)
		if (c->f == f) {
			*st = c->st;
			return true;
		}
	return false;
}

const struct elfsym_file *filecache_header(const char *path, char *err,
					   size_t errlen)
{
	return get(&headers, path, 0, elfsym_open_header, err, errlen);
}

const struct elfsym_file *filecache_symbols(const char *path, char *err,
					    size_t errlen)
{
	return get(&symbols, path, MAX_SYMBOL_FILES, elfsym_open, err,
		   errlen);
}
