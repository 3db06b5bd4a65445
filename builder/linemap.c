/*
 * builder/linemap.c - which lines a unified diff moves without changing.
 *
 * A fix that adds lines near the top of a file shifts the line numbers of
 * everything below, and __LINE__ (assertions, logging) turns that shift into
 * a different immediate in functions whose source did not change.  Those
 * functions must not be counted as changed: relive-build asks this map
 * whether an old and a new value are the same line, moved by the diff.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dobj.h"

struct hunk {
	unsigned long old_start, old_len, new_start, new_len;
};

struct dfile {
	char *path;
	struct hunk *h;
	size_t nh;
};

struct linemap {
	struct dfile *f;
	size_t nf;
};

void linemap_free(struct linemap *m)
{
	size_t i;

	if (!m)
		return;
	for (i = 0; i < m->nf; i++) {
		free(m->f[i].path);
		free(m->f[i].h);
	}
	free(m->f);
	free(m);
}

static char *diff_path(const char *s)
{
	size_t n;

	while (*s == ' ')
		s++;
	/* "b/src/x.c\t2024-..." : drop the date and the a/ b/ prefix. */
	n = strcspn(s, "\t\n");
	while (n && s[n - 1] == ' ')
		n--;
	if (n > 2 && (s[0] == 'a' || s[0] == 'b') && s[1] == '/') {
		s += 2;
		n -= 2;
	}
	return strndup(s, n);
}

struct linemap *linemap_read(const char *diffpath, char *err, size_t errlen)
{
	struct linemap *m = calloc(1, sizeof(*m));
	FILE *fp = fopen(diffpath, "r");
	char *line = NULL;
	size_t cap = 0;
	unsigned long lineno = 0;

	if (!m || !fp) {
		snprintf(err, errlen, "%s: cannot read the diff", diffpath);
		goto bad;
	}
	while (getline(&line, &cap, fp) > 0) {
		struct dfile *f;
		struct hunk h = { 0, 1, 0, 1 };

		lineno++;
		if (!strncmp(line, "+++ ", 4)) {
			struct dfile *n = realloc(m->f, (m->nf + 1) * sizeof(*n));

			if (!n)
				goto oom;
			m->f = n;
			f = &m->f[m->nf++];
			memset(f, 0, sizeof(*f));
			if (!(f->path = diff_path(line + 4)))
				goto oom;
			continue;
		}
		if (strncmp(line, "@@ -", 4))
			continue;
		if (!m->nf) {
			snprintf(err, errlen, "%s:%lu: hunk before any '+++' file line",
				 diffpath, lineno);
			goto bad;
		}
		if (sscanf(line, "@@ -%lu,%lu +%lu,%lu", &h.old_start, &h.old_len,
			   &h.new_start, &h.new_len) != 4) {
			/* "@@ -5 +5,2 @@": a length of one is left out. */
			h.old_len = h.new_len = 1;
			if (sscanf(line, "@@ -%lu +%lu,%lu", &h.old_start, &h.new_start,
				   &h.new_len) < 2 &&
			    sscanf(line, "@@ -%lu,%lu +%lu", &h.old_start, &h.old_len,
				   &h.new_start) < 3) {
				snprintf(err, errlen, "%s:%lu: unreadable hunk header",
					 diffpath, lineno);
				goto bad;
			}
		}
		f = &m->f[m->nf - 1];
		{
			struct hunk *n = realloc(f->h, (f->nh + 1) * sizeof(*n));

			if (!n)
				goto oom;
			f->h = n;
			f->h[f->nh++] = h;
		}
	}
	free(line);
	fclose(fp);
	if (!m->nf) {
		snprintf(err, errlen, "%s: not a unified diff (no '+++' line)",
			 diffpath);
		linemap_free(m);
		return NULL;
	}
	return m;
oom:
	snprintf(err, errlen, "out of memory reading %s", diffpath);
bad:
	free(line);
	if (fp)
		fclose(fp);
	linemap_free(m);
	return NULL;
}

static const char *base(const char *p)
{
	const char *s = strrchr(p, '/');

	return s ? s + 1 : p;
}

static const struct dfile *find(const struct linemap *m, const char *file)
{
	size_t i;

	if (!m || !file)
		return NULL;
	for (i = 0; i < m->nf; i++)
		if (!strcmp(base(m->f[i].path), base(file)))
			return &m->f[i];
	return NULL;
}

bool linemap_touches(const struct linemap *m, const char *file)
{
	return find(m, file) != NULL;
}

bool linemap_moved(const struct linemap *m, const char *file,
		   unsigned long oldline, unsigned long newline)
{
	const struct dfile *f = find(m, file);
	long shift = 0;
	size_t i;

	if (!f || !oldline)
		return false;
	/* Hunks come in file order.  Context lines inside a hunk count as
	 * unchanged too, but this map is coarse: a line inside a hunk's old
	 * range is treated as touched. */
	for (i = 0; i < f->nh; i++) {
		const struct hunk *h = &f->h[i];
		unsigned long end = h->old_start + h->old_len;

		if (oldline >= end) {
			shift += (long)h->new_len - (long)h->old_len;
			continue;
		}
		if (oldline >= h->old_start)
			return false;
		break;
	}
	return shift != 0 && (long)oldline + shift == (long)newline;
}
