/*
 * relive/proc.c - what the controller learns about a target from /proc,
 * and reading and writing its memory without stopping it.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "elfsym.h"
#include "relive.h"

/* Tells why relive cannot work on pid, or 0. */
int proc_access(pid_t pid, char *err, size_t errlen)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == EACCES || errno == EPERM) {
			snprintf(err, errlen,
				 "permission denied for process %d: it belongs "
				 "to another user or ptrace is restricted; run "
				 "relive as the process's owner or as root",
				 pid);
			return -EPERM;
		}
		if (errno == ENOENT) {
			snprintf(err, errlen, "no process with PID %d", pid);
			return -ESRCH;
		}
		snprintf(err, errlen, "process %d: %s", pid, strerror(errno));
		return -errno;
	}
	close(fd);
	return 0;
}

/* The number after "key" at the start of a line of text, or -1. */
static long status_field(const char *text, const char *key)
{
	size_t len = strlen(key);
	const char *p = text;

	for (;;) {
		if (!strncmp(p, key, len))
			return strtol(p + len, NULL, 10);
		p = strchr(p, '\n');
		if (!p++)
			return -1;
	}
}

int proc_check(pid_t pid, long *threads, char *err, size_t errlen)
{
	/* /proc/PID/status is about 1.5 KiB: one read, no stdio (which
	 * would add an fstat and a buffer for each process of --all). */
	char path[64], text[8192];
	long tracer, n = -1;
	ssize_t got = -1;
	int fd, rc = proc_access(pid, err, errlen);

	if (threads)
		*threads = 0;
	if (rc)
		return rc;
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		got = read(fd, text, sizeof(text) - 1);
		close(fd);
	}
	if (got <= 0) {
		snprintf(err, errlen, "no process with PID %d", pid);
		return -ESRCH;
	}
	text[got] = '\0';
	tracer = status_field(text, "TracerPid:");
	if (threads && (n = status_field(text, "Threads:")) > 0)
		*threads = n;
	if (tracer > 0 && tracer != getpid()) {
		snprintf(err, errlen,
			 "process %d is already traced by process %ld (a "
			 "debugger?); detach it first", pid, tracer);
		return -EBUSY;
	}
	return 0;
}

int proc_tasks(pid_t pid, pid_t **tids, size_t *n)
{
	char path[64];
	DIR *d;
	struct dirent *e;
	size_t cap = 16;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return -errno;
	*n = 0;
	*tids = malloc(cap * sizeof(**tids));
	if (!*tids) {
		closedir(d);
		return -ENOMEM;
	}
	while ((e = readdir(d))) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		if (*n == cap) {
			pid_t *t = realloc(*tids, 2 * cap * sizeof(*t));

			if (!t) {
				closedir(d);
				return -ENOMEM;
			}
			*tids = t;
			cap *= 2;
		}
		(*tids)[(*n)++] = atoi(e->d_name);
	}
	closedir(d);
	return 0;
}

/* /proc/PID/stat (tid 0) or /proc/PID/task/TID/stat, from its third field
 * on (the name before it may hold spaces and parentheses); NULL if it
 * cannot be read. */
static const char *read_stat(pid_t pid, pid_t tid, char *buf, size_t len)
{
	char path[96], *p;
	ssize_t n;
	int fd;

	if (tid)
		snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", pid, tid);
	else
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] ? p + 2 : NULL;
}

char proc_thread_state(pid_t pid, pid_t tid)
{
	char buf[1024];
	const char *p = read_stat(pid, tid, buf, sizeof(buf));

	return p ? p[0] : 0;
}

char proc_thread_load(pid_t pid, pid_t tid, unsigned long long *ticks)
{
	char buf[1024];
	const char *p = read_stat(pid, tid, buf, sizeof(buf)), *q = p;
	unsigned long long utime, stime;
	int field = 3; /* the state; utime and stime are fields 14 and 15 */

	*ticks = 0;
	if (!p)
		return 0;
	for (; *q && field < 14; q++)
		if (*q == ' ')
			field++;
	if (field == 14 && sscanf(q, "%llu %llu", &utime, &stime) == 2)
		*ticks = utime + stime;
	return p[0];
}

bool proc_thread_named(pid_t pid, pid_t tid, const char *comm)
{
	char path[64], name[32];
	ssize_t len;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", pid, tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	len = read(fd, name, sizeof(name) - 1);
	close(fd);
	if (len <= 0)
		return false;
	name[len] = '\0';
	name[strcspn(name, "\n")] = '\0';
	return !strcmp(name, comm);
}

bool proc_thread_sigmask(pid_t pid, pid_t tid, uint64_t *mask)
{
	char path[64], line[256];
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", pid, tid);
	if (!(f = fopen(path, "re")))
		return false;
	while (!found && fgets(line, sizeof(line), f))
		if (!strncmp(line, "SigBlk:", 7))
			found = sscanf(line + 7, "%" SCNx64, mask) == 1;
	fclose(f);
	return found;
}

unsigned long long proc_start_time(pid_t pid)
{
	char buf[1024];
	const char *p = read_stat(pid, 0, buf, sizeof(buf));
	unsigned long long t = 0;
	int field = 3;

	for (; p && *p && field < 22; p++)
		if (*p == ' ')
			field++;
	if (p && field == 22)
		sscanf(p, "%llu", &t);
	return t;
}

/*
 * The last /proc/PID/maps read, parsed.  Within one step of a command the
 * same process's map is asked for several times (is the agent there, where
 * is libc, which objects does the patch name); nothing relive does between
 * those asks maps or unmaps anything.  proc_maps_forget() drops it before
 * each step that may (a request to the agent, a call made by a borrowed
 * thread).  The program may change its own map at any time; a map read
 * once per step is as recent as the step can use.
 */
static struct {
	pid_t pid;
	struct proc_map *maps;
	size_t n;
} maps_cache;

void proc_maps_forget(void)
{
	free(maps_cache.maps);
	maps_cache.maps = NULL;
	maps_cache.n = 0;
	maps_cache.pid = 0;
}

/* Parses "lo-hi perms off dev inode   path" (hex numbers) in place: path
 * points into line, which it ends. */
static int parse_map_line(char *line, struct proc_map *m)
{
	char *p = line, *end;
	int field;

	m->lo = strtoull(p, &end, 16);
	if (end == p || *end != '-')
		return -1;
	p = end + 1;
	m->hi = strtoull(p, &end, 16);
	if (end == p || *end != ' ')
		return -1;
	p = end + 1;
	for (field = 0; field < 4 && p[field]; field++)
		m->perms[field] = p[field];
	m->perms[field] = '\0';
	p += field;
	if (*p != ' ')
		return -1;
	m->off = strtoull(p + 1, &end, 16);
	if (end == p + 1)
		return -1;
	p = end;
	for (field = 0; field < 2; field++) { /* dev, inode */
		while (*p == ' ')
			p++;
		while (*p && *p != ' ' && *p != '\n')
			p++;
	}
	while (*p == ' ')
		p++;
	p[strcspn(p, "\n")] = '\0';
	m->path = p;
	return 0;
}

/*
 * n entries of src in one allocation with their paths behind them, so that
 * one free() releases all.  A process has a few hundred mappings, most of
 * them without a path (thread stacks, their guard pages): entries of fixed
 * size with room for a path each took 27 times the memory, all of it
 * fresh pages to fault in at each read.
 */
static struct proc_map *maps_copy(const struct proc_map *src, size_t n)
{
	struct proc_map *out;
	size_t pool = 0, i;
	char *p;

	for (i = 0; i < n; i++)
		pool += strlen(src[i].path) + 1;
	out = malloc((n ? n * sizeof(*out) : 1) + pool);
	if (!out)
		return NULL;
	p = (char *)(out + n);
	for (i = 0; i < n; i++) {
		size_t len = strlen(src[i].path) + 1;

		out[i] = src[i];
		memcpy(p, src[i].path, len);
		out[i].path = p;
		p += len;
	}
	return out;
}

/*
 * The kernel makes the text of /proc/PID/maps anew for each read(2), from
 * the position reached: a file read through stdio's 1 KiB buffer costs a
 * dozen walks of the process's mappings.  One buffer of 64 KiB takes a
 * small process's whole map in one read (and its end in a second).
 */
static int read_maps(pid_t pid, struct proc_map **maps, size_t *n)
{
	char path[64], *buf, *line, *nl;
	struct proc_map *parsed;
	size_t cap = 64, bufcap = 65536, len = 0;
	ssize_t got;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf = malloc(bufcap);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while ((got = read(fd, buf + len, bufcap - 1 - len)) > 0) {
		len += (size_t)got;
		if (len == bufcap - 1) {
			char *nb = realloc(buf, 2 * bufcap);

			if (!nb) {
				got = -1;
				break;
			}
			buf = nb;
			bufcap *= 2;
		}
	}
	close(fd);
	if (got < 0) {
		free(buf);
		return -ENOMEM;
	}
	buf[len] = '\0';
	*n = 0;
	parsed = malloc(cap * sizeof(*parsed));
	if (!parsed) {
		free(buf);
		return -ENOMEM;
	}
	for (line = buf; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		if (!nl)
			nl = line + strlen(line) - 1;
		else
			*nl = '\0';
		if (*n == cap) {
			struct proc_map *nm = realloc(parsed,
						      2 * cap * sizeof(*nm));
			if (!nm) {
				free(parsed);
				free(buf);
				return -ENOMEM;
			}
			parsed = nm;
			cap *= 2;
		}
		if (!parse_map_line(line, &parsed[*n]))
			(*n)++;
	}
	*maps = maps_copy(parsed, *n);
	free(parsed);
	free(buf);
	return *maps ? 0 : -ENOMEM;
}

int proc_maps(pid_t pid, struct proc_map **maps, size_t *n)
{
	int rc;

	if (maps_cache.pid != pid || !maps_cache.maps) {
		proc_maps_forget();
		rc = read_maps(pid, &maps_cache.maps, &maps_cache.n);
		if (rc)
			return rc;
		maps_cache.pid = pid;
	}
	*maps = maps_copy(maps_cache.maps, maps_cache.n);
	if (!*maps)
		return -ENOMEM;
	*n = maps_cache.n;
	return 0;
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');

	return s ? s + 1 : p;
}

/* The name of a mapping's file without the " (deleted)" the kernel adds
 * once the file is unlinked or replaced; *deleted says whether it did. */
static const char *map_file_name(const struct proc_map *m, char *buf,
				 size_t len, bool *deleted)
{
	static const char suffix[] = " (deleted)";
	size_t n = strlen(m->path), sn = sizeof(suffix) - 1;

	*deleted = n > sn && !strcmp(m->path + n - sn, suffix);
	if (!*deleted)
		return m->path;
	snprintf(buf, len, "%.*s", (int)(n - sn), m->path);
	return buf;
}

int proc_find_object(pid_t pid, const char *name, char *path, size_t pathlen,
		     uint64_t *bias)
{
	struct proc_map *maps;
	char exe[4096] = "", linkp[64], err[256], unreadable[96] = "";
	size_t n, i;
	int rc = -ENOENT, pass;

	if (proc_maps(pid, &maps, &n))
		return -ESRCH;
	if (!name || !strcmp(name, "main")) {
		snprintf(linkp, sizeof(linkp), "/proc/%d/exe", pid);
		ssize_t l = readlink(linkp, exe, sizeof(exe) - 1);
		if (l < 0) {
			free(maps);
			return -errno;
		}
		exe[l] = '\0';
	}
	/* By file name first; by DT_SONAME (which takes reading the file)
	 * only when no file has the name. */
	for (pass = 0; pass < (exe[0] ? 1 : 2) && rc; pass++)
		for (i = 0; i < n && rc; i++) {
			struct proc_map *m = &maps[i];
			const struct elfsym_file *f;
			char plain[PATH_MAX], files[96];
			const char *file, *src;
			bool deleted;

			if (m->off != 0 || m->path[0] != '/')
				continue;
			file = map_file_name(m, plain, sizeof(plain), &deleted);
			/* A file replaced since it was mapped (an upgrade) is
			 * read as mapped, through map_files (which needs
			 * CAP_SYS_ADMIN), never by its name. */
			src = file;
			if (deleted) {
				snprintf(files, sizeof(files),
					 "/proc/%d/map_files/%llx-%llx", pid,
					 (unsigned long long)m->lo,
					 (unsigned long long)m->hi);
				src = files;
			}
			if (exe[0]) {
				if (strcmp(m->path, exe))
					continue;
			} else if (pass == 0) {
				if (strcmp(base_name(file), name))
					continue;
			} else if (!strstr(file, ".so") ||
				   !(f = filecache_header(src, err,
							  sizeof(err))) ||
				   !elfsym_soname(f) ||
				   strcmp(elfsym_soname(f), name)) {
				continue;
			}
			f = filecache_header(src, err, sizeof(err));
			if (!f) {
				if (deleted && pass == 0 && !unreadable[0])
					snprintf(unreadable, sizeof(unreadable),
						 "%s", src);
				continue;
			}
			*bias = m->lo - elfsym_first_vaddr(f);
			snprintf(path, pathlen, "%s", src);
			rc = 0;
		}
	if (rc && unreadable[0]) {
		snprintf(path, pathlen, "%s", unreadable);
		rc = -EACCES;
	}
	free(maps);
	return rc;
}

int proc_read(pid_t pid, uint64_t addr, void *buf, size_t len)
{
	struct iovec l = { buf, len }, r = { (void *)(uintptr_t)addr, len };
	ssize_t n = process_vm_readv(pid, &l, 1, &r, 1, 0);

	if (n == (ssize_t)len)
		return 0;
	return n < 0 ? -errno : -EIO;
}

int proc_write(pid_t pid, uint64_t addr, const void *buf, size_t len)
{
	struct iovec l = { (void *)buf, len },
		     r = { (void *)(uintptr_t)addr, len };
	ssize_t n = process_vm_writev(pid, &l, 1, &r, 1, 0);

	if (n == (ssize_t)len)
		return 0;
	return n < 0 ? -errno : -EIO;
}

/* libc of process pid, opened once per command and file (several steps
 * look up its functions' ranges; with a debug file its symbol table is
 * large, and `relive patch --all` finds the same file in every process). */
int proc_sys_code(pid_t pid, struct proc_map **out, size_t *nout)
{
	static struct proc_map *sys;
	static size_t nsys;
	static pid_t sys_pid;
	struct proc_map *maps;
	size_t n, i;

	if (sys_pid != pid) {
		if (proc_maps(pid, &maps, &n))
			return -ESRCH;
		for (i = 0, nsys = 0; i < n; i++) {
			const char *bn = base_name(maps[i].path);

			if (maps[i].perms[2] == 'x' &&
			    (!strncmp(bn, "libc.so", 7) ||
			     !strncmp(bn, "ld-linux", 8)))
				maps[nsys++] = maps[i];
		}
		free(sys);
		sys = maps; /* the paths stay in its block */
		sys_pid = pid;
	}
	*out = maps_copy(sys, nsys);
	if (!*out)
		return -ENOMEM;
	*nout = nsys;
	return 0;
}

const struct elfsym_file *proc_libc(pid_t pid, uint64_t *bias)
{
	static struct elfsym_file *f;
	static char f_path[4096];
	static struct stat f_st;
	static uint64_t f_bias;
	static pid_t f_pid;
	static bool mapped;
	char path[4096], e[256];
	struct stat st;

	if (f_pid == pid) {
		*bias = f_bias;
		return mapped ? f : NULL;
	}
	f_pid = pid;
	mapped = !proc_find_object(pid, "libc.so.6", path, sizeof(path),
				   &f_bias);
	if (!mapped)
		return NULL;
	*bias = f_bias;
	/* The same file, by its name or, once replaced (each process's
	 * map_files name differs), by its identity. */
	if (f && (!strcmp(path, f_path) ||
		  (!stat(path, &st) && filecache_same_file(&st, &f_st))))
		return f;
	elfsym_close(f);
	f = NULL;
	if (stat(path, &f_st))
		memset(&f_st, 0, sizeof(f_st));
	snprintf(f_path, sizeof(f_path), "%s", path);
	/* Its exported functions are all that is looked up in it. */
	if (elfsym_open_dynsym(path, &f, e, sizeof(e)))
		f = NULL;
	return f;
}
