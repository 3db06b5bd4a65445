/*
 * relive/unwind.c - a reliable unwind of one stopped thread of another
 * process, with elfutils libdwfl.
 *
 * Why this exists: relive switches a thread to a patched function only when
 * none of the functions being replaced is on its stack, exactly like the
 * kernel's livepatch consistency model.  The kernel decides that with
 * arch_stack_walk_reliable(), whose rule is "any doubt is a no": a frame the
 * unwinder had to guess, a walk that did not reach the end of the stack, an
 * unreadable stack - all make the stack unreliable and the task is simply
 * tried again later.  A stack that is wrongly called complete would let a
 * thread return into code that was just replaced; a stack wrongly called
 * unreliable only delays the transition.  So this file is strict:
 *
 *  - every frame's PC (the return address minus one, except for the
 *    interrupted frame and a frame interrupted by a signal) must lie in a
 *    mapped object and be covered by that object's CFI (.eh_frame, or
 *    .debug_frame).  That is checked here for every frame, with the same
 *    lookup libdwfl uses to unwind it, because elfutils falls back to a
 *    frame-pointer heuristic (ebl_unwind) when there is no CFI, silently;
 *  - the walk must end because the outermost frame's CFI marks the return
 *    address undefined (glibc's _start and clone/clone3 do).  libdwfl also
 *    ends a walk "successfully" when the return address cannot be computed
 *    (an unreadable stack word) or is 0; both are unreliable here;
 *  - the stack pointer must grow from each frame to its caller (except when
 *    coming out of a signal frame, which may switch stacks), and the walk
 *    is bounded, so a corrupt stack cannot loop.
 *
 * libdwfl is used with relive's own Dwfl_Thread_Callbacks, never with
 * dwfl_linux_proc_attach (which PTRACE_ATTACHes, i.e. sends SIGSTOP): the
 * caller already holds the thread in a ptrace stop and hands over the
 * registers it read.  Memory is read with process_vm_readv, a page at a
 * time, cached for the duration of one walk.  dwfl_attach_state can be
 * called only once per Dwfl, so the callbacks expose exactly one thread,
 * the one unwind_thread() is walking, taken from the unwinder.
 *
 * The vDSO is reported as "[vdso: PID]" from its line of the map, and read
 * from /proc/PID/mem by libdwfl, so frames in it unwind with its own CFI.  Objects whose file was deleted or replaced since they were
 * mapped ("... (deleted)") are read from the target's memory the same way.
 * Other files are opened through /proc/PID/root, as the target sees them
 * (a container, a chroot), never as whatever has that name here.
 *
 * Cost: unwind_open reads /proc/PID/maps once, no object yet; each
 * object's ELF and .eh_frame are opened on the first frame that needs them
 * and kept until unwind_close, so later walks do no file I/O at all.  The
 * files themselves stay open for the whole command (up to MAX_ELF_FILES,
 * or until unwind_drop_files), so the next process that maps them costs
 * no file I/O either.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <dwarf.h>
#include <elf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <libelf.h>

#include "background.h"
#include "unwind.h"

#ifdef RELIVE_UNWIND_LIBRARY
/* Built as librelive-unwind.so: the controller's pacing step, given by
 * set_pace (unwind.h). */
static bool (*pace_step)(void);

static void pace(void)
{
	if (pace_step)
		pace_step();
}
#else /* linked into a unit test */
static void pace(void)
{
	background_step();
}
#endif

#define MAX_FRAMES 1024
#define PAGE_SIZE_ 4096u
#define NCACHE 4

/* DWARF register numbers, x86-64 psABI. */
#define DWARF_RSP 7
#define DWARF_RIP 16
#define DWARF_NREGS 17

/* What frame_cb tells dwfl_getthread_frames. */
#define WALK_STOPPED 1    /* the caller's callback asked to stop */
#define WALK_UNRELIABLE 2 /* why is filled */

struct page {
	uint64_t addr; /* page address; valid when valid */
	bool valid;
	unsigned char data[PAGE_SIZE_];
};

struct unwinder {
	pid_t pid;
	Dwfl *dwfl;
	char *maps;             /* /proc/PID/maps as last reported */
	size_t mapslen;
	/* Tells dwfl_attach_state the architecture without opening a file. */
	Elf64_Ehdr ehdr;
	Elf *arch;

	/* The walk in progress. */
	pid_t tid;
	const struct user_regs_struct *regs;
	int (*cb)(uint64_t pc, void *arg);
	void *cb_arg;
	char *why;
	size_t whylen;
	unsigned nframes;
	uint64_t last_pc;
	uint64_t last_sp;
	bool prev_signal;       /* the last frame is a signal trampoline */
	bool last_ra_undefined; /* the last frame is the outermost one */
	char memerr[128];       /* the last failed memory read */

	struct page cache[NCACHE];
	unsigned victim;
};

/* ---- libdwfl callbacks ------------------------------------------------ */

static char *debuginfo_path;

/*
 * The object files unwinding has opened, kept for the whole command:
 * `relive patch --all` meets the same libraries in every process, and a
 * new Dwfl per process would map and parse each again.  An Elf handle is
 * reference-counted (elf_begin with a reference handle and its descriptor
 * returns the same handle, one reference more), so each Dwfl gets a
 * reference of its own and dwfl_end drops only that one.  The key is the
 * file's identity as the target sees it.
 */
struct elf_file {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	int fd;
	Elf *elf;
	struct elf_file *next;
};

static struct elf_file *elf_files;
static size_t n_elf_files;

/* Beyond this many files, unwind_open drops those no Dwfl uses: each keeps
 * a descriptor open. */
#define MAX_ELF_FILES 64

static Elf *elf_file_ref(const char *path, const struct stat *st)
{
	struct elf_file *e;
	struct stat fst;

	for (e = elf_files; e; e = e->next)
		if (e->dev == st->st_dev && e->ino == st->st_ino &&
		    e->size == st->st_size &&
		    e->mtime.tv_sec == st->st_mtim.tv_sec &&
		    e->mtime.tv_nsec == st->st_mtim.tv_nsec)
			return elf_begin(e->fd, ELF_C_READ_MMAP, e->elf);
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (e->fd < 0) {
		free(e);
		return NULL;
	}
	/* Keyed by what was opened: the name may have been given to another
	 * file since the stat. */
	if (fstat(e->fd, &fst) || fst.st_dev != st->st_dev ||
	    fst.st_ino != st->st_ino ||
	    !(e->elf = elf_begin(e->fd, ELF_C_READ_MMAP, NULL)) ||
	    elf_kind(e->elf) != ELF_K_ELF) {
		if (e->elf)
			elf_end(e->elf);
		close(e->fd);
		free(e);
		return NULL;
	}
	e->dev = fst.st_dev;
	e->ino = fst.st_ino;
	e->size = fst.st_size;
	e->mtime = fst.st_mtim;
	e->next = elf_files;
	elf_files = e;
	n_elf_files++;
	/* The cache's own reference stays; this one is for the Dwfl. */
	return elf_begin(e->fd, ELF_C_READ_MMAP, e->elf);
}

/*
 * The file of a mapping, as the target sees it: through /proc/PID/root, so
 * a target in another mount namespace or chroot is not unwound with the
 * CFI of whatever file has that name here.  Deleted files and the vDSO are
 * read from the target's memory by dwfl_linux_proc_find_elf.
 */
static int find_elf(Dwfl_Module *mod, void **userdata, const char *name,
		    Dwarf_Addr base, char **file_name, Elf **elfp)
{
	struct unwinder *u = *userdata;
	const char *sp = strrchr(name, ' ');
	char path[4200];
	struct stat st;

	if (!u || name[0] != '/' || (sp && strcmp(sp, " (deleted)") == 0))
		return dwfl_linux_proc_find_elf(mod, userdata, name, base,
						file_name, elfp);
	if ((size_t)snprintf(path, sizeof(path), "/proc/%d/root%s",
			     (int)u->pid, name) >= sizeof(path))
		return -1;
	/* Only regular files: a device could block on open or read. */
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return -1;
	*elfp = elf_file_ref(path, &st);
	if (!*elfp)
		return -1;
	*file_name = strdup(path);
	if (!*file_name) {
		elf_end(*elfp);
		*elfp = NULL;
		return -1;
	}
	/* No descriptor of its own: the cache keeps the file open. */
	return -1;
}

static int set_userdata(Dwfl_Module *mod, void **userdata, const char *name,
			Dwarf_Addr start, void *arg)
{
	(void)mod;
	(void)name;
	(void)start;
	*userdata = arg;
	return DWARF_CB_OK;
}

static const Dwfl_Callbacks dwfl_callbacks = {
	.find_elf = find_elf,
	.find_debuginfo = dwfl_standard_find_debuginfo,
	.debuginfo_path = &debuginfo_path,
};

/* The only thread there is: the one being unwound now. */
static pid_t next_thread(Dwfl *dwfl, void *arg, void **thread_argp)
{
	struct unwinder *u = arg;

	(void)dwfl;
	if (*thread_argp != NULL || u->tid <= 0)
		return 0;
	*thread_argp = u;
	return u->tid;
}

static bool get_thread(Dwfl *dwfl, pid_t tid, void *arg, void **thread_argp)
{
	struct unwinder *u = arg;

	(void)dwfl;
	if (tid <= 0 || tid != u->tid)
		return false;
	*thread_argp = u;
	return true;
}

static bool read_direct(struct unwinder *u, uint64_t addr, void *buf,
			size_t len)
{
	struct iovec local = { .iov_base = buf, .iov_len = len };
	struct iovec remote = { .iov_base = (void *)(uintptr_t)addr,
				.iov_len = len };
	ssize_t n = process_vm_readv(u->pid, &local, 1, &remote, 1, 0);

	if (n == (ssize_t)len)
		return true;
	snprintf(u->memerr, sizeof(u->memerr),
		 "cannot read target memory at 0x%llx: %s",
		 (unsigned long long)addr,
		 n < 0 ? strerror(errno) : "short read");
	return false;
}

static bool memory_read(Dwfl *dwfl, Dwarf_Addr addr, Dwarf_Word *result,
			void *arg)
{
	struct unwinder *u = arg;
	uint64_t base = addr & ~(uint64_t)(PAGE_SIZE_ - 1);
	unsigned off = (unsigned)(addr - base);
	struct page *p;

	(void)dwfl;
	if (off > PAGE_SIZE_ - sizeof(*result))
		return read_direct(u, addr, result, sizeof(*result));
	for (unsigned i = 0; i < NCACHE; i++) {
		p = &u->cache[i];
		if (p->valid && p->addr == base) {
			memcpy(result, p->data + off, sizeof(*result));
			return true;
		}
	}
	p = &u->cache[u->victim];
	u->victim = (u->victim + 1) % NCACHE;
	p->valid = false;
	if (!read_direct(u, base, p->data, PAGE_SIZE_))
		return false;
	p->addr = base;
	p->valid = true;
	memcpy(result, p->data + off, sizeof(*result));
	return true;
}

static bool set_initial_registers(Dwfl_Thread *thread, void *thread_arg)
{
	struct unwinder *u = thread_arg;
	const struct user_regs_struct *r = u->regs;
	/* DWARF order: rax rdx rcx rbx rsi rdi rbp rsp r8..r15, then rip. */
	Dwarf_Word regs[DWARF_NREGS] = {
		r->rax, r->rdx, r->rcx, r->rbx, r->rsi, r->rdi, r->rbp, r->rsp,
		r->r8,  r->r9,  r->r10, r->r11, r->r12, r->r13, r->r14, r->r15,
		r->rip,
	};

	if (!dwfl_thread_state_registers(thread, 0, DWARF_NREGS, regs))
		return false;
	dwfl_thread_state_register_pc(thread, r->rip);
	return true;
}

/* The caller attached and will detach; nothing to undo here. */
static void detach(Dwfl *dwfl, void *arg)
{
	(void)dwfl;
	(void)arg;
}

static void thread_detach(Dwfl_Thread *thread, void *thread_arg)
{
	(void)thread;
	(void)thread_arg;
}

static const Dwfl_Thread_Callbacks thread_callbacks = {
	.next_thread = next_thread,
	.get_thread = get_thread,
	.memory_read = memory_read,
	.set_initial_registers = set_initial_registers,
	.detach = detach,
	.thread_detach = thread_detach,
};

/* ---- the walk --------------------------------------------------------- */

static int unreliable(struct unwinder *u, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int unreliable(struct unwinder *u, const char *fmt, ...)
{
	va_list ap;

	if (u->why && u->whylen) {
		va_start(ap, fmt);
		vsnprintf(u->why, u->whylen, fmt, ap);
		va_end(ap);
	}
	return WALK_UNRELIABLE;
}

static const char *module_name(Dwfl_Module *mod)
{
	const char *name = dwfl_module_info(mod, NULL, NULL, NULL, NULL, NULL,
					    NULL, NULL);

	return name ? name : "?";
}

/*
 * The module mapped at addr.  dwfl_addrmodule alone is not enough: in
 * elfutils 0.188 it can answer with the module below an address that lies
 * past that module's end (seen with a library mapped after the report), and
 * libdwfl would then unwind with the wrong object's CFI.
 */
static Dwfl_Module *module_at(Dwfl *dwfl, Dwarf_Addr addr)
{
	Dwfl_Module *mod = dwfl_addrmodule(dwfl, addr);
	Dwarf_Addr lo, hi;

	if (!mod || !dwfl_module_info(mod, NULL, &lo, &hi, NULL, NULL, NULL,
				      NULL) || addr < lo || addr >= hi)
		return NULL;
	return mod;
}

/*
 * The CFI row libdwfl will unwind this frame with: .eh_frame first, then
 * .debug_frame, looked up at the same address (__libdwfl_frame_unwind).
 * NULL if there is none: libdwfl would guess with frame pointers.
 */
static Dwarf_Frame *cfi_frame(Dwfl_Module *mod, Dwarf_Addr addr)
{
	Dwarf_Frame *frame = NULL;
	Dwarf_Addr bias;
	Dwarf_CFI *cfi = dwfl_module_eh_cfi(mod, &bias);

	if (cfi && dwarf_cfi_addrframe(cfi, addr - bias, &frame) == 0)
		return frame;
	cfi = dwfl_module_dwarf_cfi(mod, &bias);
	if (cfi && dwarf_cfi_addrframe(cfi, addr - bias, &frame) == 0)
		return frame;
	return NULL;
}

static int frame_cb(Dwfl_Frame *state, void *arg)
{
	struct unwinder *u = arg;
	bool initial = u->nframes == 0;
	Dwarf_Addr pc, addr;
	Dwarf_Word sp;

	if (!dwfl_frame_pc(state, &pc, NULL))
		return unreliable(u, "unwinding failed after 0x%llx: %s",
				  (unsigned long long)u->last_pc,
				  dwfl_errmsg(-1));
	if (u->last_ra_undefined)
		return unreliable(u, "unwinding went on past the outermost "
				  "frame at 0x%llx",
				  (unsigned long long)u->last_pc);
	if (u->nframes >= MAX_FRAMES)
		return unreliable(u, "more than %d frames at 0x%llx",
				  MAX_FRAMES, (unsigned long long)pc);
	if (dwfl_frame_reg(state, DWARF_RSP, &sp) != 0)
		return unreliable(u, "unwinding failed at 0x%llx: stack "
				  "pointer unknown", (unsigned long long)pc);
	if (!initial && !u->prev_signal && sp <= u->last_sp)
		return unreliable(u, "unwinding failed at 0x%llx: stack "
				  "pointer 0x%llx does not grow from 0x%llx",
				  (unsigned long long)pc,
				  (unsigned long long)sp,
				  (unsigned long long)u->last_sp);

	/*
	 * A return address may be just past the end of its function (a call
	 * to a noreturn function): look up the call, as libdwfl does.  The
	 * interrupted PC and a PC interrupted by a signal are exact.
	 */
	addr = (initial || u->prev_signal) ? pc : pc - 1;
	Dwfl_Module *mod = module_at(u->dwfl, addr);
	if (!mod)
		return unreliable(u, "no unwind information for 0x%llx: not in "
				  "any mapped object", (unsigned long long)pc);
	Dwarf_Frame *frame = cfi_frame(mod, addr);
	if (!frame)
		return unreliable(u, "no unwind information for 0x%llx in %s",
				  (unsigned long long)pc, module_name(mod));

	bool signal = false;
	int ra = dwarf_frame_info(frame, NULL, NULL, &signal);
	Dwarf_Op ops_mem[3], *ops;
	size_t nops;
	bool ra_undefined = ra >= 0 &&
		dwarf_frame_register(frame, ra, ops_mem, &ops, &nops) == 0 &&
		nops == 0 && ops == ops_mem;
	free(frame);
	if (ra < 0)
		return unreliable(u, "bad unwind information for 0x%llx in %s: "
				  "%s", (unsigned long long)pc,
				  module_name(mod), dwarf_errmsg(-1));

	u->nframes++;
	u->last_pc = pc;
	u->last_sp = sp;
	u->prev_signal = signal;
	u->last_ra_undefined = ra_undefined;

	if (u->cb && u->cb(pc, u->cb_arg) != 0)
		return WALK_STOPPED;
	return DWARF_CB_OK;
}

int unwind_thread(struct unwinder *u, pid_t tid,
		  const struct user_regs_struct *regs,
		  int (*cb)(uint64_t pc, void *arg), void *arg, char *why,
		  size_t whylen)
{
	int r;

	if (why && whylen)
		why[0] = '\0';
	if (!u || !regs || tid <= 0) {
		if (why && whylen)
			snprintf(why, whylen, "invalid arguments");
		return -EINVAL;
	}
	u->tid = tid;
	u->regs = regs;
	u->cb = cb;
	u->cb_arg = arg;
	u->why = why;
	u->whylen = why ? whylen : 0;
	u->nframes = 0;
	u->last_pc = regs->rip;
	u->last_sp = 0;
	u->prev_signal = false;
	u->last_ra_undefined = false;
	u->memerr[0] = '\0';
	for (unsigned i = 0; i < NCACHE; i++)
		u->cache[i].valid = false;

	r = dwfl_getthread_frames(u->dwfl, tid, frame_cb, u);

	u->tid = 0;
	u->regs = NULL;
	u->cb = NULL;
	u->why = NULL;
	if (r == WALK_STOPPED)
		return 1;
	if (r == WALK_UNRELIABLE)
		return -EAGAIN;
	if (r == 0) {
		if (u->nframes && u->last_ra_undefined)
			return 0;
		if (why && whylen)
			snprintf(why, whylen,
				 "unwinding stopped at 0x%llx, not at the "
				 "thread's outermost frame%s%s",
				 (unsigned long long)u->last_pc,
				 u->memerr[0] ? ": " : "", u->memerr);
		return -EAGAIN;
	}
	if (why && whylen)
		snprintf(why, whylen, "unwinding failed at 0x%llx: %s",
			 (unsigned long long)u->last_pc,
			 u->memerr[0] ? u->memerr : dwfl_errmsg(-1));
	return -EAGAIN;
}

/*
 * Opens the object mapped at pc and its unwind table, as the first frame
 * in it would: 0.3 to 1.5 ms for libc and an executable, measured, which
 * the first thread held by a transition used to wait through.
 */
bool unwind_warm(struct unwinder *u, uint64_t pc, uint64_t *lo,
		 uint64_t *hi)
{
	Dwfl_Module *mod = u ? module_at(u->dwfl, pc) : NULL;
	Dwarf_Addr mlo, mhi;

	if (!mod || !dwfl_module_info(mod, NULL, &mlo, &mhi, NULL, NULL, NULL,
				      NULL))
		return false;
	free(cfi_frame(mod, pc));
	pace(); /* a table opened: up to a ms for libc's */
	*lo = mlo;
	*hi = mhi;
	return true;
}

/* Opens the unwind table of the module whose file is arg (a path). */
static int warm_named(Dwfl_Module *mod, void **userdata, const char *name,
		      Dwarf_Addr start, void *arg)
{
	Dwarf_Addr bias;

	(void)userdata;
	(void)start;
	if (!name || strcmp(name, arg))
		return DWARF_CB_OK;
	dwfl_module_eh_cfi(mod, &bias);
	return DWARF_CB_ABORT;
}

/* unwind_warm() for the process's executable. */
void unwind_warm_exe(struct unwinder *u)
{
	char link[64], exe[PATH_MAX];
	ssize_t len;

	if (!u)
		return;
	snprintf(link, sizeof(link), "/proc/%d/exe", (int)u->pid);
	len = readlink(link, exe, sizeof(exe) - 1);
	if (len <= 0)
		return;
	exe[len] = '\0';
	dwfl_getmodules(u->dwfl, warm_named, (void *)exe, 0);
	pace();
}

/* ---- setup ------------------------------------------------------------ */

void unwind_drop_files(void)
{
	struct elf_file **pp = &elf_files, *e;

	while ((e = *pp)) {
		/* elf_end drops the cache's reference and says how many are
		 * left: a file some Dwfl still uses gets its reference back
		 * and stays. */
		if (elf_end(e->elf) == 0) {
			close(e->fd);
			*pp = e->next;
			free(e);
			n_elf_files--;
		} else {
			elf_begin(e->fd, ELF_C_READ_MMAP, e->elf);
			pp = &e->next;
		}
	}
}

/* /proc/PID/maps, whole; NULL when it cannot be read. */
static char *read_maps(pid_t pid, size_t *len)
{
	char path[64], *buf = NULL;
	size_t cap = 0;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	*len = 0;
	for (;;) {
		ssize_t n;

		if (*len == cap) {
			char *nb = realloc(buf, cap ? 2 * cap : 16384);

			if (!nb)
				break;
			buf = nb;
			cap = cap ? 2 * cap : 16384;
		}
		n = read(fd, buf + *len, cap - *len);
		if (n <= 0) {
			if (n == 0) {
				close(fd);
				return buf;
			}
			break;
		}
		*len += (size_t)n;
	}
	close(fd);
	free(buf);
	return NULL;
}

/* The [vdso] line of a map, as "[vdso: PID]" for libdwfl's own reader of
 * in-memory images (dwfl_linux_proc_find_elf). */
static int report_vdso(struct unwinder *u)
{
	const char *line = u->maps, *end = u->maps + u->mapslen;

	while (line < end) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		size_t len = nl ? (size_t)(nl - line) : (size_t)(end - line);
		unsigned long lo, hi;
		char name[32];

		if (len > 7 && !memcmp(line + len - 7, " [vdso]", 7) &&
		    sscanf(line, "%lx-%lx", &lo, &hi) == 2) {
			snprintf(name, sizeof(name), "[vdso: %d]", (int)u->pid);
			return dwfl_report_module(u->dwfl, name, lo, hi) ? 0 : -1;
		}
		line += len + 1;
	}
	return 0; /* none (vdso=0) */
}

/*
 * Reports the modules of the map in u->maps.  libdwfl's own reader of a
 * live process (dwfl_linux_proc_report) reads the map again through a
 * 1 KiB stdio buffer, and the kernel walks the mappings anew for each
 * read; the text read once here is handed to its parser instead, and the
 * vDSO, which that parser finds through the auxiliary vector, is reported
 * from its [vdso] line.
 */
static int report(struct unwinder *u, char *err, size_t errlen)
{
	FILE *f;
	int r;

	if (!u->maps) {
		if (err && errlen)
			snprintf(err, errlen, "cannot read the memory map of "
				 "%d: %s", (int)u->pid, strerror(errno));
		return errno ? -errno : -EIO;
	}
	dwfl_report_begin(u->dwfl);
	f = fmemopen(u->maps, u->mapslen, "r");
	r = f ? dwfl_linux_proc_maps_report(u->dwfl, f) : errno;
	if (f)
		fclose(f);
	if (r == 0 && report_vdso(u))
		r = -1;
	if (dwfl_report_end(u->dwfl, NULL, NULL) != 0 && r == 0)
		r = -1;
	if (r == 0) {
		/* Before any module's file is looked for (lazily). */
		dwfl_getmodules(u->dwfl, set_userdata, u, 0);
		return 0;
	}
	if (r > 0) {
		if (err && errlen)
			snprintf(err, errlen, "cannot read the memory map of "
				 "%d: %s", (int)u->pid, strerror(r));
		return -r;
	}
	if (err && errlen)
		snprintf(err, errlen, "cannot read the memory map of %d: %s",
			 (int)u->pid, dwfl_errmsg(-1));
	return -EIO;
}

int unwind_open(pid_t pid, struct unwinder **up, char *err, size_t errlen)
{
	struct unwinder *u;
	int r;

	*up = NULL;
	u = calloc(1, sizeof(*u));
	if (!u) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	u->pid = pid;
	if (n_elf_files > MAX_ELF_FILES)
		unwind_drop_files();
	if (elf_version(EV_CURRENT) == EV_NONE) {
		snprintf(err, errlen, "libelf: %s", elf_errmsg(-1));
		free(u);
		return -EIO;
	}
	u->dwfl = dwfl_begin(&dwfl_callbacks);
	if (!u->dwfl) {
		snprintf(err, errlen, "libdwfl: %s", dwfl_errmsg(-1));
		free(u);
		return -ENOMEM;
	}
	u->maps = read_maps(pid, &u->mapslen);
	pace();
	r = report(u, err, errlen);
	pace();
	if (r < 0)
		goto fail;

	/*
	 * With a NULL Elf, dwfl_attach_state borrows the Ebl of the first
	 * module it can open, which unwind_refresh could free later.  An ELF
	 * header in memory names the architecture for good.
	 */
	memcpy(u->ehdr.e_ident, ELFMAG, SELFMAG);
	u->ehdr.e_ident[EI_CLASS] = ELFCLASS64;
	u->ehdr.e_ident[EI_DATA] = ELFDATA2LSB;
	u->ehdr.e_ident[EI_VERSION] = EV_CURRENT;
	u->ehdr.e_ident[EI_OSABI] = ELFOSABI_SYSV;
	u->ehdr.e_type = ET_CORE;
	u->ehdr.e_machine = EM_X86_64;
	u->ehdr.e_version = EV_CURRENT;
	u->ehdr.e_ehsize = sizeof(u->ehdr);
	u->arch = elf_memory((char *)&u->ehdr, sizeof(u->ehdr));
	if (!u->arch) {
		snprintf(err, errlen, "libelf: %s", elf_errmsg(-1));
		r = -ENOMEM;
		goto fail;
	}
	if (!dwfl_attach_state(u->dwfl, u->arch, pid, &thread_callbacks, u)) {
		snprintf(err, errlen, "libdwfl: cannot unwind %d: %s",
			 (int)pid, dwfl_errmsg(-1));
		r = -EIO;
		goto fail;
	}
	*up = u;
	return 0;

fail:
	unwind_close(u);
	return r;
}

int unwind_refresh(struct unwinder *u)
{
	size_t len = 0;
	char *maps;

	if (!u)
		return -EINVAL;
	/* Reporting the modules again reads several files of /proc: only
	 * when the memory map changed. */
	maps = read_maps(u->pid, &len);
	if (maps && u->maps && len == u->mapslen &&
	    !memcmp(maps, u->maps, len)) {
		free(maps);
		return 0;
	}
	free(u->maps);
	u->maps = maps;
	u->mapslen = len;
	return report(u, NULL, 0);
}

/* The unwinder of the process this command works on: the objects' unwind
 * tables are read once per command, not once per request or pass. */
static struct unwinder *shared;

int unwind_get(pid_t pid, struct unwinder **up, char *err, size_t errlen)
{
	int rc;

	if (shared && shared->pid != pid) {
		unwind_close(shared);
		shared = NULL;
	}
	if (shared) {
		unwind_refresh(shared);
		*up = shared;
		return 0;
	}
	rc = unwind_open(pid, &shared, err, errlen);
	*up = shared;
	return rc;
}

void unwind_close(struct unwinder *u)
{
	if (!u)
		return;
	if (u->dwfl)
		dwfl_end(u->dwfl);
	if (u->arch)
		elf_end(u->arch);
	free(u->maps);
	free(u);
}

#ifdef RELIVE_UNWIND_LIBRARY
static void set_pace(bool (*step)(void))
{
	pace_step = step;
}

__attribute__((visibility("default")))
const struct unwind_ops relive_unwind_ops = {
	.open = unwind_open,
	.close = unwind_close,
	.get = unwind_get,
	.refresh = unwind_refresh,
	.thread = unwind_thread,
	.warm = unwind_warm,
	.warm_exe = unwind_warm_exe,
	.drop_files = unwind_drop_files,
	.set_pace = set_pace,
};
#endif
