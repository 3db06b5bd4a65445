/*
 * common/elfsym.c - symbols and identity of one ELF object file.
 *
 * Why this exists: the agent (inside the target) and the controller must
 * resolve "function foo, position N, of object libx.so.1" to the same
 * address, the way the kernel's klp_find_object_symbol() does for modules.
 * This file reads an object once with libelf, copies what lookups need (the
 * defined symbols of its best symbol table, its build-id, its soname) into
 * one private structure indexed by a hash table, and closes the file: it
 * runs inside other processes, so it keeps no file descriptor, no libelf
 * handle and no mutable global state (except the debug root, a setting).
 */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "elfsym.h"

#define NO_SYM UINT32_MAX
#define VERSYM_HIDDEN 0x8000  /* GNU: a non-default version */
#define VERSYM_VERSION 0x7fff
#define DEFAULT_DEBUG_ROOT "/usr/lib/debug"

/* One defined symbol, copied out of the file. */
struct esym {
	uint64_t value;
	uint64_t size;
	uint32_t name;     /* offset in names: "foo", "foo@VER" or "foo@@VER" */
	uint32_t plainlen; /* length of the name before any '@' */
	uint32_t next;     /* next symbol of the same bucket, in table order */
	uint8_t type;
	uint8_t bind;
	bool hidden;       /* a non-default version ("foo@VER") */
};

struct byaddr {
	uint64_t value;
	uint32_t sym;
};

struct elfsym_file {
	char *build_id;    /* lower-case hex, "" when none */
	char *soname;
	int type;
	uint64_t first_vaddr;
	const char *table;
	struct esym *syms;
	uint32_t nsyms;
	char *names;       /* all names, NUL-terminated, back to back */
	size_t names_len;
	size_t names_cap;
	uint32_t *buckets;
	uint32_t nbuckets; /* a power of two */
	struct byaddr *byaddr; /* functions by value, made on first use */
	uint32_t nbyaddr;
};

static char debug_root[PATH_MAX] = DEFAULT_DEBUG_ROOT;
static Elf_Cmd read_cmd = ELF_C_READ;

void elfsym_set_mapped(bool mapped)
{
	read_cmd = mapped ? ELF_C_READ_MMAP : ELF_C_READ;
}

void elfsym_set_debug_root(const char *dir)
{
	if (!dir || strlen(dir) >= sizeof(debug_root))
		dir = DEFAULT_DEBUG_ROOT;
	strcpy(debug_root, dir);
}

static void set_err(char *err, size_t errlen, const char *path, int errnum)
{
	if (!err || !errlen)
		return;
	errno = errnum;
	snprintf(err, errlen, "%s: %m", path);
}

static void set_msg(char *err, size_t errlen, const char *path,
		    const char *msg)
{
	if (err && errlen)
		snprintf(err, errlen, "%s: %s", path, msg);
}

static const char *libelf_msg(void)
{
	const char *m = elf_errmsg(0);

	return m ? m : "cannot read the ELF file";
}

/* FNV-1a over the plain name (the part before '@'). */
static uint32_t name_hash(const char *s, size_t len)
{
	uint32_t h = 2166136261u;

	while (len--) {
		h ^= (unsigned char)*s++;
		h *= 16777619u;
	}
	return h;
}

/* ---- build-id and soname ---------------------------------------------- */

/* Returns 1 with *out set, 0 when data holds no GNU build-id note, or
 * -ENOMEM. */
static int note_build_id(Elf_Data *data, char **out)
{
	static const char hex[] = "0123456789abcdef";
	size_t off = 0, next, name_off, desc_off;
	GElf_Nhdr nh;

	while (off < data->d_size &&
	       (next = gelf_getnote(data, off, &nh, &name_off, &desc_off)) > 0) {
		const unsigned char *desc;
		char *s;
		size_t i;

		off = next;
		if (nh.n_type != NT_GNU_BUILD_ID ||
		    nh.n_namesz != sizeof(ELF_NOTE_GNU) ||
		    memcmp((char *)data->d_buf + name_off, ELF_NOTE_GNU,
			   sizeof(ELF_NOTE_GNU)) != 0 ||
		    nh.n_descsz == 0)
			continue;
		desc = (const unsigned char *)data->d_buf + desc_off;
		s = malloc(2 * (size_t)nh.n_descsz + 1);
		if (!s)
			return -ENOMEM;
		for (i = 0; i < nh.n_descsz; i++) {
			s[2 * i] = hex[desc[i] >> 4];
			s[2 * i + 1] = hex[desc[i] & 15];
		}
		s[2 * i] = '\0';
		*out = s;
		return 1;
	}
	return 0;
}

/* Sets *out to the build-id in hex, or to NULL.  Returns 0 or -ENOMEM. */
static int read_build_id(Elf *elf, char **out)
{
	Elf_Scn *scn = NULL;
	size_t i, phnum;
	int rc;

	*out = NULL;
	while ((scn = elf_nextscn(elf, scn)) != NULL) {
		GElf_Shdr shdr;
		Elf_Data *data;

		if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_NOTE)
			continue;
		data = elf_getdata(scn, NULL);
		if (!data || !data->d_buf)
			continue;
		rc = note_build_id(data, out);
		if (rc)
			return rc < 0 ? rc : 0;
	}

	/* No section headers: the program headers still say where notes are. */
	if (elf_getphdrnum(elf, &phnum) != 0)
		return 0;
	for (i = 0; i < phnum; i++) {
		GElf_Phdr ph;
		Elf_Data *data;

		if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_NOTE)
			continue;
		data = elf_getdata_rawchunk(elf, (int64_t)ph.p_offset,
					    ph.p_filesz,
					    ph.p_align == 8 ? ELF_T_NHDR8 :
							      ELF_T_NHDR);
		if (!data)
			continue;
		rc = note_build_id(data, out);
		if (rc)
			return rc < 0 ? rc : 0;
	}
	return 0;
}

/* Sets *out to a copy of DT_SONAME, or NULL.  Returns 0 or -ENOMEM. */
static int read_soname(Elf *elf, char **out)
{
	Elf_Scn *scn = NULL;

	*out = NULL;
	while ((scn = elf_nextscn(elf, scn)) != NULL) {
		GElf_Shdr shdr;
		Elf_Data *data;
		size_t i, n;

		if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_DYNAMIC ||
		    !shdr.sh_entsize)
			continue;
		data = elf_getdata(scn, NULL);
		if (!data)
			continue;
		n = shdr.sh_size / shdr.sh_entsize;
		for (i = 0; i < n; i++) {
			GElf_Dyn dyn;
			const char *s;

			if (!gelf_getdyn(data, (int)i, &dyn) ||
			    dyn.d_tag == DT_NULL)
				break;
			if (dyn.d_tag != DT_SONAME)
				continue;
			s = elf_strptr(elf, shdr.sh_link, dyn.d_un.d_val);
			if (!s)
				return 0;
			*out = strdup(s);
			return *out ? 0 : -ENOMEM;
		}
	}
	return 0;
}

static uint64_t read_first_vaddr(Elf *elf)
{
	uint64_t lowest = UINT64_MAX;
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	size_t i, phnum;

	if (elf_getphdrnum(elf, &phnum) != 0)
		return 0;
	for (i = 0; i < phnum; i++) {
		GElf_Phdr ph;

		if (gelf_getphdr(elf, (int)i, &ph) && ph.p_type == PT_LOAD &&
		    ph.p_vaddr < lowest)
			lowest = ph.p_vaddr;
	}
	if (lowest == UINT64_MAX)
		return 0;
	if (!page || (page & (page - 1)))
		page = 4096;
	return lowest & ~(page - 1);
}

/* ---- symbol table ------------------------------------------------------ */

static bool wanted(const GElf_Sym *s)
{
	if (s->st_shndx == SHN_UNDEF || s->st_shndx == SHN_ABS ||
	    s->st_shndx == SHN_COMMON || s->st_name == 0)
		return false;
	switch (GELF_ST_TYPE(s->st_info)) {
	case STT_FUNC:
	case STT_OBJECT:
	case STT_TLS:
	case STT_GNU_IFUNC:
		return true;
	case STT_NOTYPE:
		return s->st_value != 0;
	default:
		return false;
	}
}

/* Appends the pieces of one name (a is la bytes long); returns its
 * offset or -ENOMEM. */
static int64_t add_name(struct elfsym_file *f, const char *a, size_t la,
			const char *sep, const char *b)
{
	size_t ls = sep ? strlen(sep) : 0;
	size_t lb = b ? strlen(b) : 0;
	size_t need = la + ls + lb + 1;
	size_t off = f->names_len;

	if (need > UINT32_MAX - off)
		return -ENOMEM;
	if (off + need > f->names_cap) {
		size_t cap = f->names_cap ? f->names_cap : 4096;
		char *p;

		while (cap < off + need)
			cap *= 2;
		p = realloc(f->names, cap);
		if (!p)
			return -ENOMEM;
		f->names = p;
		f->names_cap = cap;
	}
	memcpy(f->names + off, a, la);
	if (ls)
		memcpy(f->names + off + la, sep, ls);
	if (lb)
		memcpy(f->names + off + la + ls, b, lb);
	f->names[off + need - 1] = '\0';
	f->names_len = off + need;
	return (int64_t)off;
}

static void drop_symbols(struct elfsym_file *f)
{
	free(f->syms);
	free(f->names);
	free(f->buckets);
	f->syms = NULL;
	f->names = NULL;
	f->buckets = NULL;
	f->nsyms = 0;
	f->nbuckets = 0;
	f->names_len = 0;
	f->names_cap = 0;
}

/*
 * Version names of a .dynsym, by version index (from .gnu.version_d).  The
 * strings stay owned by elf.  Returns 0 (with *vers NULL when the file has no
 * version definitions) or -ENOMEM.
 */
static int read_verdefs(Elf *elf, const char ***vers, size_t *nvers)
{
	Elf_Scn *scn = NULL;

	*vers = NULL;
	*nvers = 0;
	while ((scn = elf_nextscn(elf, scn)) != NULL) {
		GElf_Shdr shdr;
		Elf_Data *data;
		GElf_Verdef vd;
		GElf_Verdaux vda;
		size_t off = 0, n = 0, i;
		const char **v;

		if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_GNU_verdef)
			continue;
		data = elf_getdata(scn, NULL);
		if (!data)
			return 0;
		/* First pass: the highest index. */
		for (i = 0; i < shdr.sh_info && gelf_getverdef(data, (int)off, &vd);
		     i++) {
			if (vd.vd_ndx > n)
				n = vd.vd_ndx;
			if (!vd.vd_next)
				break;
			off += vd.vd_next;
		}
		if (!n)
			return 0;
		v = calloc(n + 1, sizeof(*v));
		if (!v)
			return -ENOMEM;
		off = 0;
		for (i = 0; i < shdr.sh_info && gelf_getverdef(data, (int)off, &vd);
		     i++) {
			if (!(vd.vd_flags & VER_FLG_BASE) && vd.vd_cnt &&
			    gelf_getverdaux(data, (int)(off + vd.vd_aux), &vda))
				v[vd.vd_ndx] = elf_strptr(elf, shdr.sh_link,
							  vda.vda_name);
			if (!vd.vd_next)
				break;
			off += vd.vd_next;
		}
		*vers = v;
		*nvers = n + 1;
		return 0;
	}
	return 0;
}

static Elf_Data *find_versym(Elf *elf, size_t symndx)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(elf, scn)) != NULL) {
		GElf_Shdr shdr;

		if (gelf_getshdr(scn, &shdr) && shdr.sh_type == SHT_GNU_versym &&
		    shdr.sh_link == symndx)
			return elf_getdata(scn, NULL);
	}
	return NULL;
}

static int build_index(struct elfsym_file *f)
{
	uint32_t nb = 16, i;

	while (nb < f->nsyms && nb < (1u << 31))
		nb <<= 1;
	f->buckets = malloc(nb * sizeof(*f->buckets));
	if (!f->buckets)
		return -ENOMEM;
	f->nbuckets = nb;
	for (i = 0; i < nb; i++)
		f->buckets[i] = NO_SYM;
	/* Push in reverse so each bucket lists its symbols in table order.
	 * load_table() left each name's hash in next. */
	for (i = f->nsyms; i-- > 0;) {
		struct esym *s = &f->syms[i];
		uint32_t b = s->next & (nb - 1);

		s->next = f->buckets[b];
		f->buckets[b] = i;
	}
	return 0;
}

/*
 * Copies the wanted symbols of the table in scn and indexes them.  Returns 0,
 * -ENOMEM, or -EIO when libelf cannot read the table; on error f has no
 * symbols.
 */
static int load_table(struct elfsym_file *f, Elf *elf, Elf_Scn *scn)
{
	const char **vers = NULL;
	Elf_Data *data, *versym = NULL, *strd;
	Elf_Scn *strscn;
	const char *strs = NULL;
	GElf_Shdr shdr;
	size_t i, n, nvers = 0, strsz = 0;
	bool raw;
	int rc = -EIO;

	if (!gelf_getshdr(scn, &shdr) || !shdr.sh_entsize)
		return -EIO;
	data = elf_getdata(scn, NULL);
	if (!data)
		return -EIO;
	n = shdr.sh_size / shdr.sh_entsize;
	if (n >= NO_SYM)
		return -EIO;
	/* The symbols as libelf laid them out in memory, and their string
	 * table, when that ends with a NUL (so every name in it is
	 * terminated): no gelf_getsym or elf_strptr per symbol, which took
	 * a third of the time for an executable of 10000 functions. */
	raw = gelf_getclass(elf) == ELFCLASS64 && data->d_type == ELF_T_SYM &&
	      data->d_size >= n * sizeof(Elf64_Sym);
	if ((strscn = elf_getscn(elf, shdr.sh_link)) &&
	    (strd = elf_getdata(strscn, NULL)) && strd->d_size &&
	    ((const char *)strd->d_buf)[strd->d_size - 1] == '\0') {
		strs = strd->d_buf;
		strsz = strd->d_size;
	}
	if (shdr.sh_type == SHT_DYNSYM) {
		versym = find_versym(elf, elf_ndxscn(scn));
		rc = read_verdefs(elf, &vers, &nvers);
		if (rc)
			return rc;
		rc = -EIO;
	}
	f->syms = malloc((n ? n : 1) * sizeof(*f->syms));
	if (!f->syms) {
		rc = -ENOMEM;
		goto fail;
	}
	/* The names fit in the size of their string table, but for the
	 * versions a dynamic table adds: one allocation instead of a
	 * doubling series, each step of which copied the names so far into
	 * fresh pages. */
	if (strsz > f->names_cap - f->names_len && strsz < UINT32_MAX) {
		char *p = realloc(f->names, f->names_len + strsz);

		if (!p) {
			rc = -ENOMEM;
			goto fail;
		}
		f->names = p;
		f->names_cap = f->names_len + strsz;
	}
	for (i = 1; i < n; i++) {
		struct esym *s;
		GElf_Sym sym;
		GElf_Versym vs;
		const char *name, *ver = NULL, *at;
		bool hidden = false;
		size_t len;
		int64_t off;

		if (raw)
			sym = ((const Elf64_Sym *)data->d_buf)[i];
		else if (!gelf_getsym(data, (int)i, &sym))
			goto fail;
		if (!wanted(&sym))
			continue;
		if (strs)
			name = sym.st_name < strsz ? strs + sym.st_name : NULL;
		else
			name = elf_strptr(elf, shdr.sh_link, sym.st_name);
		if (!name || !*name)
			continue;
		len = strlen(name);
		if (versym && gelf_getversym(versym, (int)i, &vs)) {
			size_t ndx = vs & VERSYM_VERSION;

			hidden = vs & VERSYM_HIDDEN;
			if (ndx >= 2 && ndx < nvers && vers[ndx])
				ver = vers[ndx];
			else
				hidden = false;
		}
		if (ver)
			off = add_name(f, name, len, hidden ? "@" : "@@", ver);
		else
			off = add_name(f, name, len, NULL, NULL);
		if (off < 0) {
			rc = (int)off;
			goto fail;
		}
		at = memchr(name, '@', len);
		s = &f->syms[f->nsyms++];
		s->value = sym.st_value;
		s->size = sym.st_size;
		s->name = (uint32_t)off;
		s->plainlen = (uint32_t)(at ? (size_t)(at - name) : len);
		s->next = name_hash(name, s->plainlen); /* for build_index */
		s->type = GELF_ST_TYPE(sym.st_info);
		s->bind = GELF_ST_BIND(sym.st_info);
		if (ver)
			s->hidden = hidden;
		else /* .symtab spells versions in the name */
			s->hidden = at && at[1] != '@';
	}
	if (f->nsyms < n && f->nsyms) {
		struct esym *p = realloc(f->syms, f->nsyms * sizeof(*p));

		if (p)
			f->syms = p;
	}
	rc = build_index(f);
	if (rc)
		goto fail;
	free(vers);
	return 0;
fail:
	free(vers);
	drop_symbols(f);
	return rc;
}

static Elf_Scn *find_table(Elf *elf, GElf_Word type)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(elf, scn)) != NULL) {
		GElf_Shdr shdr;

		if (gelf_getshdr(scn, &shdr) && shdr.sh_type == type)
			return scn;
	}
	return NULL;
}

/*
 * Loads the .symtab of the separate debug file of f, if there is one with
 * the same build-id.  Returns 1 when it did, 0 when it did not, -ENOMEM.
 */
static int load_debug_table(struct elfsym_file *f)
{
	char path[PATH_MAX];
	char *id = NULL;
	Elf_Scn *scn;
	Elf *elf;
	int fd, n, rc = 0;

	if (strlen(f->build_id) < 3)
		return 0;
	n = snprintf(path, sizeof(path), "%s/.build-id/%.2s/%s.debug",
		     debug_root, f->build_id, f->build_id + 2);
	if (n < 0 || (size_t)n >= sizeof(path))
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	elf = elf_begin(fd, read_cmd, NULL);
	if (!elf || elf_kind(elf) != ELF_K_ELF)
		goto out;
	rc = read_build_id(elf, &id);
	if (rc || !id || strcmp(id, f->build_id) != 0)
		goto out;
	scn = find_table(elf, SHT_SYMTAB);
	if (!scn)
		goto out;
	rc = load_table(f, elf, scn);
	if (rc == 0)
		rc = 1;
	else if (rc != -ENOMEM)
		rc = 0;
out:
	free(id);
	elf_end(elf);
	close(fd);
	return rc;
}

enum open_mode { OPEN_HEADER, OPEN_DYNSYM, OPEN_FULL };

static int open_file(const char *path, enum open_mode mode,
		     struct elfsym_file **out, char *err, size_t errlen)
{
	struct elfsym_file *f = NULL;
	GElf_Ehdr ehdr;
	Elf_Scn *scn;
	Elf *elf = NULL;
	int fd, rc;

	*out = NULL;
	if (elf_version(EV_CURRENT) == EV_NONE) {
		set_msg(err, errlen, path, libelf_msg());
		return -EINVAL;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		set_err(err, errlen, path, -rc);
		return rc;
	}
	/* Read, not mapped, unless elfsym_set_mapped() said otherwise:
	 * libelf reads just the sections asked for, and the agent changes
	 * no mapping of the process it runs in (a munmap there interrupts
	 * every CPU the program's threads run on). */
	elf = elf_begin(fd, read_cmd, NULL);
	if (!elf) {
		set_msg(err, errlen, path, libelf_msg());
		rc = -EIO;
		goto out;
	}
	if (elf_kind(elf) != ELF_K_ELF || !gelf_getehdr(elf, &ehdr)) {
		set_msg(err, errlen, path, "not an ELF file");
		rc = -ENOEXEC;
		goto out;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		rc = -ENOMEM;
		goto nomem;
	}
	f->type = ehdr.e_type;
	f->first_vaddr = read_first_vaddr(elf);
	rc = read_build_id(elf, &f->build_id);
	if (rc)
		goto nomem;
	if (!f->build_id) {
		f->build_id = strdup("");
		if (!f->build_id) {
			rc = -ENOMEM;
			goto nomem;
		}
	}
	rc = read_soname(elf, &f->soname);
	if (rc)
		goto nomem;

	rc = -EIO;
	scn = mode == OPEN_FULL ? find_table(elf, SHT_SYMTAB) : NULL;
	if (mode == OPEN_HEADER)
		rc = 0;
	if (scn) {
		rc = load_table(f, elf, scn);
		f->table = ".symtab";
	}
	if (rc == -EIO && mode == OPEN_FULL) {
		rc = load_debug_table(f);
		if (rc == 1)
			f->table = "debug .symtab";
		else if (rc == 0)
			rc = -EIO;
	}
	if (rc == -EIO) {
		scn = find_table(elf, SHT_DYNSYM);
		rc = scn ? load_table(f, elf, scn) : 0;
		f->table = ".dynsym";
	}
	if (rc == -ENOMEM)
		goto nomem;
	if (rc < 0) {
		set_msg(err, errlen, path, libelf_msg());
		goto out;
	}
	if (!f->buckets) {
		/* No symbol table at all: lookups find nothing. */
		f->table = "none";
		rc = build_index(f);
		if (rc)
			goto nomem;
	}
	*out = f;
	f = NULL;
	rc = 0;
	goto out;
nomem:
	rc = -ENOMEM;
	set_err(err, errlen, path, ENOMEM);
out:
	elfsym_close(f);
	elf_end(elf);
	close(fd);
	return rc;
}

int elfsym_open(const char *path, struct elfsym_file **out, char *err,
		size_t errlen)
{
	return open_file(path, OPEN_FULL, out, err, errlen);
}

int elfsym_open_dynsym(const char *path, struct elfsym_file **out, char *err,
		       size_t errlen)
{
	return open_file(path, OPEN_DYNSYM, out, err, errlen);
}

int elfsym_open_header(const char *path, struct elfsym_file **out, char *err,
		       size_t errlen)
{
	return open_file(path, OPEN_HEADER, out, err, errlen);
}

static int byaddr_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct byaddr *)a)->value;
	uint64_t y = ((const struct byaddr *)b)->value;

	return (x > y) - (x < y);
}

int elfsym_func_at(struct elfsym_file *f, uint64_t value,
		   struct elfsym_sym *sym)
{
	return elfsym_func_name_at(f, value, sym, NULL);
}

/* The function symbols with a size, by address (built on first use). */
static int byaddr_build(struct elfsym_file *f)
{
	uint32_t i;

	if (f->byaddr)
		return 0;
	f->byaddr = malloc((f->nsyms ? f->nsyms : 1) * sizeof(*f->byaddr));
	if (!f->byaddr)
		return -ENOMEM;
	f->nbyaddr = 0;
	for (i = 0; i < f->nsyms; i++)
		if (f->syms[i].type == STT_FUNC && f->syms[i].size) {
			f->byaddr[f->nbyaddr].value = f->syms[i].value;
			f->byaddr[f->nbyaddr++].sym = i;
		}
	qsort(f->byaddr, f->nbyaddr, sizeof(*f->byaddr), byaddr_cmp);
	return 0;
}

/* The index of the first function symbol at or after value. */
static uint32_t byaddr_first(const struct elfsym_file *f, uint64_t value)
{
	uint32_t lo = 0, hi = f->nbyaddr;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (f->byaddr[mid].value < value)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void sym_out(const struct elfsym_file *f, uint32_t i,
		    struct elfsym_sym *sym, const char **name)
{
	sym->value = f->syms[i].value;
	sym->size = f->syms[i].size;
	sym->type = f->syms[i].type;
	sym->bind = f->syms[i].bind;
	if (name)
		*name = f->names + f->syms[i].name;
}

int elfsym_func_name_at(struct elfsym_file *f, uint64_t value,
			struct elfsym_sym *sym, const char **name)
{
	uint32_t lo;

	if (byaddr_build(f))
		return -ENOMEM;
	lo = byaddr_first(f, value);
	if (lo == f->nbyaddr || f->byaddr[lo].value != value)
		return -ENOENT;
	sym_out(f, f->byaddr[lo].sym, sym, name);
	return 0;
}

int elfsym_func_containing(struct elfsym_file *f, uint64_t addr,
			   struct elfsym_sym *sym)
{
	uint32_t j;
	uint64_t start;

	if (byaddr_build(f))
		return -ENOMEM;
	j = byaddr_first(f, addr + 1);
	if (!j)
		return -ENOENT;
	/* The nearest start at or before addr, and its aliases; a symbol
	 * that starts earlier and spans a nearer one is not looked at. */
	start = f->byaddr[j - 1].value;
	while (j-- > 0 && f->byaddr[j].value == start) {
		const struct esym *s = &f->syms[f->byaddr[j].sym];

		if (addr < s->value + s->size) {
			sym_out(f, f->byaddr[j].sym, sym, NULL);
			return 0;
		}
	}
	return -ENOENT;
}

void elfsym_close(struct elfsym_file *f)
{
	if (!f)
		return;
	free(f->byaddr);
	drop_symbols(f);
	free(f->build_id);
	free(f->soname);
	free(f);
}

const char *elfsym_build_id(const struct elfsym_file *f)
{
	return f->build_id;
}

const char *elfsym_soname(const struct elfsym_file *f)
{
	return f->soname;
}

int elfsym_type(const struct elfsym_file *f)
{
	return f->type;
}

uint64_t elfsym_first_vaddr(const struct elfsym_file *f)
{
	return f->first_vaddr;
}

const char *elfsym_table(const struct elfsym_file *f)
{
	return f->table;
}

/* ---- lookup ------------------------------------------------------------ */

static bool matches(const struct elfsym_file *f, const struct esym *s,
		    const char *name, size_t plainlen, bool versioned)
{
	const char *sname = f->names + s->name;

	if (versioned)
		return strcmp(sname, name) == 0;
	return s->plainlen == plainlen && memcmp(sname, name, plainlen) == 0;
}

struct query {
	const char *name;
	size_t plainlen;
	bool versioned;
	bool only_default;
	uint32_t head;
};

/* Whether s is a definition of q that counts: it matches, and no earlier
 * counting match has the same address (an alias such as glibc's local
 * "memcpy" and "memcpy@@GLIBC_2.14" is one definition). */
static bool counts(const struct elfsym_file *f, const struct query *q,
		   uint32_t i)
{
	const struct esym *s = &f->syms[i];
	uint32_t j;

	if (!matches(f, s, q->name, q->plainlen, q->versioned) ||
	    (q->only_default && s->hidden))
		return false;
	for (j = q->head; j != i; j = f->syms[j].next) {
		const struct esym *t = &f->syms[j];

		if (t->value == s->value &&
		    matches(f, t, q->name, q->plainlen, q->versioned) &&
		    !(q->only_default && t->hidden))
			return false;
	}
	return true;
}

int elfsym_lookup(const struct elfsym_file *f, const char *name,
		  unsigned long sympos, struct elfsym_sym *sym,
		  unsigned *count)
{
	struct query q = { .name = name };
	unsigned ndefault = 0, n = 0, pos = 0;
	uint32_t i;

	if (count)
		*count = 0;
	if (!f->nbuckets)
		return -ENOENT;
	q.plainlen = strcspn(name, "@");
	q.versioned = name[q.plainlen] != '\0';
	q.head = f->buckets[name_hash(name, q.plainlen) & (f->nbuckets - 1)];
	for (i = q.head; i != NO_SYM; i = f->syms[i].next)
		if (!f->syms[i].hidden &&
		    matches(f, &f->syms[i], name, q.plainlen, q.versioned))
			ndefault++;
	/* Non-default versions count only when nothing else has the name. */
	q.only_default = !q.versioned && ndefault > 0;
	for (i = q.head; i != NO_SYM; i = f->syms[i].next)
		if (counts(f, &q, i))
			n++;
	if (count)
		*count = n;
	if (n == 0)
		return -ENOENT;
	if (sympos == 0 && n > 1)
		return -EEXIST;
	if (sympos > n)
		return -ERANGE;
	if (sympos == 0)
		sympos = 1;
	for (i = q.head; i != NO_SYM; i = f->syms[i].next) {
		const struct esym *s = &f->syms[i];

		if (!counts(f, &q, i) || ++pos < sympos)
			continue;
		if (sym) {
			sym->value = s->value;
			sym->size = s->size;
			sym->type = s->type;
			sym->bind = s->bind;
		}
		return 0;
	}
	return -ENOENT; /* not reached */
}

void elfsym_strerror(int rc, const char *name, unsigned long sympos,
		     unsigned count, const char *objname, char *buf,
		     size_t buflen)
{
	const char *defs = count == 1 ? "definition" : "definitions";

	if (!buf || !buflen)
		return;
	switch (rc) {
	case 0:
		snprintf(buf, buflen, "symbol '%s' found in %s", name, objname);
		break;
	case -EEXIST:
		snprintf(buf, buflen,
			 "symbol '%s' is ambiguous in %s (%u %s); set old_sympos",
			 name, objname, count, defs);
		break;
	case -ENOENT:
		snprintf(buf, buflen, "symbol '%s' not found in %s", name,
			 objname);
		break;
	case -ERANGE:
		snprintf(buf, buflen,
			 "symbol '%s' has no position %lu in %s (%u %s)", name,
			 sympos, objname, count, defs);
		break;
	default:
		errno = rc < 0 ? -rc : rc;
		snprintf(buf, buflen, "symbol '%s' in %s: %m", name, objname);
		break;
	}
}
