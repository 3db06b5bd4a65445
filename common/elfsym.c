/*
 * common/elfsym.c - symbols and identity of one ELF object file.
 *
 * Why this exists: the agent (inside the target) and the controller must
 * resolve "function foo, position N, of object libx.so.1" to the same
 * address, the way the kernel's klp_find_object_symbol() does for modules.
 * This file reads an object once with libelf and indexes the defined
 * symbols of its best symbol table in place: a hash table over the table's
 * own entries and string table, as libelf holds them (read into memory, or
 * the file's pages when the controller maps it), with no copy of each
 * symbol and name.  It keeps the libelf handle for as long as the index
 * lives, but no file descriptor, and no mutable global state (except the
 * debug root and the read mode, settings): it runs inside other processes.
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
	/* The table used, in place: libelf's data of the file's handle
	 * (elf), or of its separate debug file's (debug_elf). */
	Elf *elf;
	Elf *debug_elf;
	const Elf64_Sym *syms; /* nsyms entries, the null symbol first */
	uint32_t nsyms;
	const char *strs;  /* its string table; the last byte is a NUL */
	size_t strsz;
	const uint16_t *versym; /* .gnu.version of a .dynsym, or NULL */
	const char **vers; /* version names by index, owned by elf */
	size_t nvers;
	Elf64_Sym *own_syms; /* a native copy of a table that is not one */
	char *own_strs;    /* a string table that did not end with a NUL */
	uint32_t *next;    /* per symbol: the next one of its bucket */
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

static bool wanted(const Elf64_Sym *s)
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

static void drop_symbols(struct elfsym_file *f)
{
	free(f->own_syms);
	free(f->own_strs);
	free(f->vers);
	free(f->next);
	free(f->buckets);
	f->syms = f->own_syms = NULL;
	f->strs = f->own_strs = NULL;
	f->versym = NULL;
	f->vers = NULL;
	f->next = f->buckets = NULL;
	f->nsyms = f->nbuckets = 0;
	f->strsz = f->nvers = 0;
}

/* A symbol of the table as lookups see it. */
struct symview {
	const char *name;  /* as the table spells it */
	size_t plainlen;   /* its length before any '@' */
	const char *ver;   /* .dynsym: its version's name, or NULL */
	bool hidden;       /* a non-default version ("foo@VER") */
};

/* The name of symbol i when the index takes it: a defined function,
 * object or TLS symbol with a name; NULL otherwise. */
static const char *indexed_name(const struct elfsym_file *f, uint32_t i)
{
	const Elf64_Sym *s = &f->syms[i];

	if (!wanted(s) || s->st_name >= f->strsz || !f->strs[s->st_name])
		return NULL;
	return f->strs + s->st_name;
}

static void view(const struct elfsym_file *f, uint32_t i, const char *name,
		 struct symview *v)
{
	const char *at = strchr(name, '@');

	v->name = name;
	v->plainlen = at ? (size_t)(at - name) : strlen(name);
	v->ver = NULL;
	if (f->versym) {
		uint16_t vs = f->versym[i];
		size_t ndx = vs & VERSYM_VERSION;

		if (ndx >= 2 && ndx < f->nvers && f->vers[ndx]) {
			v->ver = f->vers[ndx];
			v->hidden = vs & VERSYM_HIDDEN;
			return;
		}
	}
	/* .symtab spells versions in the name */
	v->hidden = at && at[1] != '@';
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

/* Links every symbol the index takes into the bucket of its plain name,
 * each bucket in table order. */
static int build_index(struct elfsym_file *f)
{
	uint32_t nb = 16, i;

	while (nb < f->nsyms && nb < (1u << 31))
		nb <<= 1;
	f->buckets = malloc(nb * sizeof(*f->buckets));
	f->next = malloc((f->nsyms ? f->nsyms : 1) * sizeof(*f->next));
	if (!f->buckets || !f->next)
		return -ENOMEM;
	f->nbuckets = nb;
	for (i = 0; i < nb; i++)
		f->buckets[i] = NO_SYM;
	for (i = f->nsyms; i-- > 1;) {
		const char *name = indexed_name(f, i);
		uint32_t b;

		f->next[i] = NO_SYM;
		if (!name)
			continue;
		b = name_hash(name, strcspn(name, "@")) & (nb - 1);
		f->next[i] = f->buckets[b];
		f->buckets[b] = i;
	}
	return 0;
}

/*
 * Indexes the table in scn where libelf holds it.  Returns 0, -ENOMEM, or
 * -EIO when libelf cannot read the table; on error f has no symbols.
 */
static int load_table(struct elfsym_file *f, Elf *elf, Elf_Scn *scn)
{
	Elf_Data *data, *strd, *vsd;
	Elf_Scn *strscn;
	GElf_Shdr shdr;
	size_t i, n;
	int rc = -EIO;

	if (!gelf_getshdr(scn, &shdr) || !shdr.sh_entsize)
		return -EIO;
	data = elf_getdata(scn, NULL);
	if (!data)
		return -EIO;
	n = shdr.sh_size / shdr.sh_entsize;
	if (n >= NO_SYM)
		return -EIO;
	if (!(strscn = elf_getscn(elf, shdr.sh_link)) ||
	    !(strd = elf_getdata(strscn, NULL)))
		return -EIO;
	/* A native 64-bit table is used as it is; any other is converted
	 * once. */
	if (gelf_getclass(elf) == ELFCLASS64 && data->d_type == ELF_T_SYM &&
	    data->d_size >= n * sizeof(Elf64_Sym) &&
	    !((uintptr_t)data->d_buf % _Alignof(Elf64_Sym))) {
		f->syms = data->d_buf;
	} else {
		f->own_syms = malloc((n ? n : 1) * sizeof(*f->own_syms));
		if (!f->own_syms) {
			rc = -ENOMEM;
			goto fail;
		}
		for (i = 0; i < n; i++) {
			GElf_Sym sym;

			if (!gelf_getsym(data, (int)i, &sym))
				goto fail;
			f->own_syms[i].st_name = sym.st_name;
			f->own_syms[i].st_info = sym.st_info;
			f->own_syms[i].st_other = sym.st_other;
			f->own_syms[i].st_shndx = sym.st_shndx;
			f->own_syms[i].st_value = sym.st_value;
			f->own_syms[i].st_size = sym.st_size;
		}
		f->syms = f->own_syms;
	}
	f->nsyms = (uint32_t)n;
	f->strs = strd->d_buf;
	f->strsz = strd->d_size;
	if (f->strsz && f->strs[f->strsz - 1] != '\0') {
		/* every name terminated, the last one too */
		f->own_strs = malloc(f->strsz + 1);
		if (!f->own_strs) {
			rc = -ENOMEM;
			goto fail;
		}
		memcpy(f->own_strs, f->strs, f->strsz);
		f->own_strs[f->strsz++] = '\0';
		f->strs = f->own_strs;
	}
	if (shdr.sh_type == SHT_DYNSYM) {
		vsd = find_versym(elf, elf_ndxscn(scn));
		if (vsd && vsd->d_type == ELF_T_HALF &&
		    vsd->d_size >= n * sizeof(uint16_t) &&
		    !((uintptr_t)vsd->d_buf % _Alignof(uint16_t)))
			f->versym = vsd->d_buf;
		rc = read_verdefs(elf, &f->vers, &f->nvers);
		if (rc)
			goto fail;
		rc = -EIO;
	}
	rc = build_index(f);
	if (rc)
		goto fail;
	return 0;
fail:
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
	if (rc == 0) {
		/* Its data is the index's: kept, without the descriptor. */
		elf_cntl(elf, ELF_C_FDDONE);
		f->debug_elf = elf;
		elf = NULL;
		rc = 1;
	} else if (rc != -ENOMEM) {
		rc = 0;
	}
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
		if (rc == 0)
			f->elf = elf;
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
		if (scn && rc == 0)
			f->elf = elf;
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
	if (f->elf) {
		/* The index uses its data in place: the handle stays, the
		 * descriptor does not (libelf reads nothing more). */
		elf_cntl(elf, ELF_C_FDDONE);
		elf = NULL;
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
	for (i = 1; i < f->nsyms; i++)
		if (GELF_ST_TYPE(f->syms[i].st_info) == STT_FUNC &&
		    f->syms[i].st_size && indexed_name(f, i)) {
			f->byaddr[f->nbyaddr].value = f->syms[i].st_value;
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
	const Elf64_Sym *s = &f->syms[i];

	sym->value = s->st_value;
	sym->size = s->st_size;
	sym->type = GELF_ST_TYPE(s->st_info);
	sym->bind = GELF_ST_BIND(s->st_info);
	if (name)
		*name = f->strs + s->st_name;
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
		const Elf64_Sym *s = &f->syms[f->byaddr[j].sym];

		if (addr < s->st_value + s->st_size) {
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
	elf_end(f->elf);
	elf_end(f->debug_elf);
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

Elf *elfsym_elf(const struct elfsym_file *f)
{
	return f->elf;
}

const char *elfsym_table(const struct elfsym_file *f)
{
	return f->table;
}

/* ---- lookup ------------------------------------------------------------ */

struct query {
	const char *name;
	size_t plainlen;
	bool versioned;    /* "foo@VER" or "foo@@VER": that version only */
	bool only_default;
	uint32_t head;
};

/* Whether the symbol v is named q: by its plain name, or by its whole
 * name when q gives a version (a .dynsym's "foo" with its version "VER"
 * is "foo@VER" or "foo@@VER", as .symtab spells it). */
static bool matches(const struct symview *v, const struct query *q)
{
	const char *rest;
	size_t len;

	if (v->plainlen != q->plainlen ||
	    memcmp(v->name, q->name, q->plainlen))
		return false;
	if (!q->versioned)
		return true;
	if (!v->ver)
		return strcmp(v->name + q->plainlen, q->name + q->plainlen) == 0;
	/* the rest of the name itself, then the version */
	len = strlen(v->name + q->plainlen);
	if (strncmp(q->name + q->plainlen, v->name + q->plainlen, len))
		return false;
	rest = q->name + q->plainlen + len;
	len = v->hidden ? 1 : 2;
	if (strncmp(rest, "@@", len) || rest[len] == '@')
		return false;
	return strcmp(rest + len, v->ver) == 0;
}

static void view_at(const struct elfsym_file *f, uint32_t i,
		    struct symview *v)
{
	view(f, i, f->strs + f->syms[i].st_name, v);
}

/* Whether symbol i is a definition of q that counts: it matches, and no
 * earlier counting match has the same address (an alias such as glibc's
 * local "memcpy" and "memcpy@@GLIBC_2.14" is one definition). */
static bool counts(const struct elfsym_file *f, const struct query *q,
		   uint32_t i)
{
	struct symview v, w;
	uint32_t j;

	view_at(f, i, &v);
	if (!matches(&v, q) || (q->only_default && v.hidden))
		return false;
	for (j = q->head; j != i; j = f->next[j]) {
		if (f->syms[j].st_value != f->syms[i].st_value)
			continue;
		view_at(f, j, &w);
		if (matches(&w, q) && !(q->only_default && w.hidden))
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
	struct symview v;
	uint32_t i;

	if (count)
		*count = 0;
	if (!f->nbuckets)
		return -ENOENT;
	q.plainlen = strcspn(name, "@");
	q.versioned = name[q.plainlen] != '\0';
	q.head = f->buckets[name_hash(name, q.plainlen) & (f->nbuckets - 1)];
	for (i = q.head; i != NO_SYM; i = f->next[i]) {
		view_at(f, i, &v);
		if (!v.hidden && matches(&v, &q))
			ndefault++;
	}
	/* Non-default versions count only when nothing else has the name. */
	q.only_default = !q.versioned && ndefault > 0;
	for (i = q.head; i != NO_SYM; i = f->next[i])
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
	for (i = q.head; i != NO_SYM; i = f->next[i]) {
		if (!counts(f, &q, i) || ++pos < sympos)
			continue;
		if (sym)
			sym_out(f, i, sym, NULL);
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
