/*
 * relive/inject.c - the agent inside the target: finding it, loading it,
 * and sending it requests.
 *
 * Loading borrows one thread of the target and makes it call the C
 * library's dlopen() on librelive-boot.so, whose constructor starts a
 * thread that loads the agent (agent/boot.c says why).  Later requests
 * wake the agent's own thread (agent/service.c) through its pipe; only
 * when it has none (a fork child, a program that closed the pipe) does a
 * borrowed thread call relive_agent_request().  While a borrowed thread
 * works, all the others run, so a lock it needs (malloc's, the dynamic
 * loader's) is always released by its holder.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/syscall.h>

#include "arch.h"
#include "elfsym.h"
#include "libpath.h"
#include "relive.h"
#include "unwind.h"

#define AGENT_FILE RELIVE_AGENT_FILE
#define BOOT_FILE "librelive-boot.so"

const char *agent_default_path(void)
{
	static char path[PATH_MAX];
	const char *env = getenv("RELIVE_AGENT");

	if (env && *env)
		return env;
	return libpath_find(AGENT_FILE, RELIVE_AGENT_INSTALLED, path,
			    sizeof(path));
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');

	return s ? s + 1 : p;
}

/*
 * The thread to try first: of the threads asleep (state S), the one that
 * has used the least CPU time, else the main thread, else any live one.
 * A thread asleep in a condition variable or in accept(2) for minutes
 * costs the service nothing while it serves relive; one that sleeps an
 * instant between two requests (a worker of a busy server, the event loop
 * of Redis) is the one whose clients would wait, and it is the one that
 * has run the most.  Among equals, the first listed (the main thread
 * comes first).  At most PICK_LOOK threads are looked at.
 */
#define PICK_LOOK 256

pid_t pick_thread(pid_t pid)
{
	pid_t *tids, sleeper = 0, alive = 0;
	unsigned long long least = 0;
	size_t n, i;
	char main_state = 0;

	if (proc_tasks(pid, &tids, &n))
		return proc_thread_state(pid, pid) ? pid : 0;
	for (i = 0; i < n && i < PICK_LOOK; i++) {
		unsigned long long ticks;
		char s = proc_thread_load(pid, tids[i], &ticks);

		if (tids[i] == pid)
			main_state = s; /* listed first */
		if (s == 'S' && (!sleeper || ticks < least)) {
			sleeper = tids[i];
			least = ticks;
		} else if (!alive && s && s != 'Z' && s != 'X') {
			alive = tids[i];
		}
	}
	free(tids);
	if (sleeper)
		return sleeper;
	if (main_state && main_state != 'Z' && main_state != 'X')
		return pid;
	return alive;
}

/* From done_seq to the end of done_ino: what a request reads before it
 * rings the agent. */
#define CTL_TAIL_LEN                                                      \
	(offsetof(struct relive_ctl, done_ino) + sizeof(uint64_t) -        \
	 offsetof(struct relive_ctl, done_seq))

/* Copies the control block, but for its two big buffers that the agent
 * never writes: the request's argument and the pending threads (written by
 * the controller; list.c reads them itself).  One system call. */
int agent_read_ctl(struct agent *a)
{
	static const struct {
		size_t lo, hi;
	} part[] = {
		{ 0, offsetof(struct relive_ctl, arg) },
		{ offsetof(struct relive_ctl, status),
		  offsetof(struct relive_ctl, pending) },
		{ offsetof(struct relive_ctl, req_seq), sizeof(struct relive_ctl) },
	};
	struct iovec l[3], r[3];
	size_t i, len = 0;
	ssize_t n;

	for (i = 0; i < 3; i++) {
		l[i].iov_base = (char *)&a->c + part[i].lo;
		r[i].iov_base = (void *)(uintptr_t)(a->ctl + part[i].lo);
		l[i].iov_len = r[i].iov_len = part[i].hi - part[i].lo;
		len += l[i].iov_len;
	}
	n = process_vm_readv(a->pid, l, 3, r, 3, 0);
	if (n == (ssize_t)len)
		return 0;
	return n < 0 ? -errno : -EIO;
}

/* The agent's symbols, by file: `relive patch --all` finds the same agent
 * file in every process it patches. */
struct agent_symbols {
	uint64_t first_vaddr, ctl, request, restorer;
};

static struct {
	char path[4096];
	struct stat st;
	struct agent_symbols sy;
	bool valid;
} agent_cache;

static bool agent_symbols_cached(const char *path, struct agent_symbols *sy)
{
	struct stat st;

	if (!agent_cache.valid || strcmp(path, agent_cache.path) ||
	    stat(path, &st) || !filecache_same_file(&st, &agent_cache.st))
		return false;
	*sy = agent_cache.sy;
	return true;
}

static void agent_symbols_cache(const char *path,
				const struct agent_symbols *sy)
{
	agent_cache.valid = strlen(path) < sizeof(agent_cache.path) &&
			    !stat(path, &agent_cache.st);
	if (!agent_cache.valid)
		return;
	snprintf(agent_cache.path, sizeof(agent_cache.path), "%s", path);
	agent_cache.sy = *sy;
}

/* Finds the agent in pid's memory.  Returns 0 (a->loaded says whether it
 * is there) or an error when an agent is there but unusable. */
int agent_find(pid_t pid, struct agent *a, char *err, size_t errlen)
{
	struct proc_map *maps;
	size_t n, i;
	int rc = 0;

	memset(a, 0, sizeof(*a));
	a->pid = pid;
	if (proc_maps(pid, &maps, &n)) {
		snprintf(err, errlen, "no process with PID %d", pid);
		return -ESRCH;
	}
	for (i = 0; i < n; i++) {
		struct elfsym_file *f;
		struct elfsym_sym ctl, req, rst;
		struct agent_symbols sy;
		const char *bn = base_name(maps[i].path);
		char e[256], file[128];
		const char *open_path = maps[i].path;

		if (maps[i].off || strncmp(bn, AGENT_FILE, strlen(AGENT_FILE)))
			continue;
		if (strcmp(bn, AGENT_FILE)) {
			/* "librelive-agent.so (deleted)": relive was upgraded
			 * or rebuilt since; read the file the process still
			 * maps, so the version check below names it. */
			if (strcmp(bn + strlen(AGENT_FILE), " (deleted)"))
				continue;
			snprintf(file, sizeof(file),
				 "/proc/%d/map_files/%llx-%llx", pid,
				 (unsigned long long)maps[i].lo,
				 (unsigned long long)maps[i].hi);
			open_path = file;
		}
		if (!agent_symbols_cached(open_path, &sy)) {
			if (elfsym_open(open_path, &f, e, sizeof(e))) {
				snprintf(err, errlen, "agent in process %d: %s",
					 pid, e);
				rc = -ENOENT;
				break;
			}
			if (elfsym_lookup(f, "relive_agent_ctl", 0, &ctl, NULL) ||
			    elfsym_lookup(f, "relive_agent_request", 0, &req,
					  NULL) ||
			    elfsym_lookup(f, "relive_agent_restorer", 0, &rst,
					  NULL)) {
				snprintf(err, errlen,
					 "%s in process %d is not a relive agent",
					 maps[i].path, pid);
				elfsym_close(f);
				rc = -ENOENT;
				break;
			}
			sy.first_vaddr = elfsym_first_vaddr(f);
			sy.ctl = ctl.value;
			sy.request = req.value;
			sy.restorer = rst.value;
			elfsym_close(f);
			agent_symbols_cache(open_path, &sy);
		}
		uint64_t bias = maps[i].lo - sy.first_vaddr;
		a->ctl = bias + sy.ctl;
		a->request = bias + sy.request;
		a->restorer = bias + sy.restorer;
		snprintf(a->path, sizeof(a->path), "%s", maps[i].path);
		/* The header first: the rest of the block is laid out by
		 * the agent's version. */
		if (proc_read(pid, a->ctl, &a->c,
			      offsetof(struct relive_ctl, op))) {
			snprintf(err, errlen, "cannot read the agent of process "
				 "%d", pid);
			rc = -EIO;
			break;
		}
		if (a->c.magic != RELIVE_CTL_MAGIC ||
		    a->c.abi != RELIVE_CTL_ABI ||
		    strncmp(a->c.version, RELIVE_VERSION,
			    sizeof(a->c.version))) {
			a->c.version[sizeof(a->c.version) - 1] = '\0';
			snprintf(err, errlen,
				 "process %d runs relive agent version %s "
				 "(control block layout %u, %s), this relive "
				 "is %s (layout %u); use the relive that "
				 "loaded it, or restart the process to change "
				 "versions", pid,
				 a->c.magic == RELIVE_CTL_MAGIC ? a->c.version :
								  "unknown",
				 a->c.magic == RELIVE_CTL_MAGIC ? a->c.abi : 0,
				 maps[i].path, RELIVE_VERSION, RELIVE_CTL_ABI);
			rc = -EPROTO;
			break;
		}
		if (agent_read_ctl(a)) {
			snprintf(err, errlen, "cannot read the agent of process "
				 "%d", pid);
			rc = -EIO;
			break;
		}
		a->loaded = true;
		break;
	}
	free(maps);
	return rc;
}

/* Address of a dynamic symbol of the target's C library. */
static int libc_symbol(pid_t pid, const char *name, uint64_t *addr,
		       char *err, size_t errlen)
{
	uint64_t bias;
	const struct elfsym_file *f = proc_libc(pid, &bias);
	struct elfsym_sym sym;
	unsigned count;
	int rc;

	if (!f) {
		snprintf(err, errlen,
			 "process %d has no readable libc.so.6 mapped (static "
			 "or not a glibc program); relive cannot load its "
			 "agent there", pid);
		return -ENOENT;
	}
	rc = elfsym_lookup(f, name, 0, &sym, &count);
	if (rc == -EEXIST) /* several symbol versions of one function */
		rc = elfsym_lookup(f, name, count, &sym, NULL);
	if (rc) {
		snprintf(err, errlen, "no %s in the C library of process %d",
			 name, pid);
		return rc;
	}
	*addr = bias + sym.value;
	return 0;
}

/*
 * Finds the C library's rt_sigreturn trampoline (__restore_rt, the
 * sa_restorer of every handler glibc installs): `mov $15,%rax; syscall`.
 * It is not an exported symbol, so it is looked for in the code: first
 * within RESTORER_WINDOW bytes of libc's sigaction (glibc defines both in
 * one file, and the agent's find_libc_restorer looks there too), where
 * one read of 2 KiB of the process's memory finds it.  Only when that
 * window holds it not exactly once is the whole code looked through
 * (reading libc's 1.4 MiB of code took about 10 ms of a first injection).
 */
#define RESTORER_WINDOW 1024

static const uint8_t restorer_pat[] = RELIVE_ARCH_RESTORER_CODE;

static size_t find_bytes(const uint8_t *buf, size_t len, const uint8_t *pat,
			 size_t plen)
{
	const uint8_t *hit = memmem(buf, len, pat, plen);

	return hit ? (size_t)(hit - buf) : len;
}

/* The pattern found exactly once in the window around fn in the
 * executable mapping m of process pid: its address in *addr. */
static bool restorer_near(pid_t pid, const struct proc_map *m, uint64_t fn,
			  uint64_t *addr)
{
	uint8_t buf[2 * RESTORER_WINDOW];
	uint64_t from, to;
	size_t off, len;

	if (fn < m->lo || fn >= m->hi)
		return false;
	from = fn - m->lo > RESTORER_WINDOW ? fn - RESTORER_WINDOW : m->lo;
	to = m->hi - fn > RESTORER_WINDOW ? fn + RESTORER_WINDOW : m->hi;
	len = (size_t)(to - from);
	if (proc_read(pid, from, buf, len))
		return false;
	off = find_bytes(buf, len, restorer_pat, sizeof(restorer_pat));
	if (off >= len ||
	    find_bytes(buf + off + 1, len - off - 1, restorer_pat,
		       sizeof(restorer_pat)) < len - off - 1)
		return false; /* none, or which one? */
	*addr = from + off;
	return true;
}

/* Where the pattern is in the file behind an executable mapping, found
 * once per file: every process of the machine maps the same libc. */
static bool restorer_in_file(const struct proc_map *m, uint64_t *file_off)
{
	static char cached_path[512];
	static uint64_t cached_off;
	size_t len = m->hi - m->lo, off;
	uint8_t *buf;
	ssize_t n;
	int fd;

	if (cached_path[0] && !strcmp(cached_path, m->path)) {
		*file_off = cached_off;
		return true;
	}
	fd = open(m->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	buf = malloc(len);
	n = buf ? pread(fd, buf, len, (off_t)m->off) : -1;
	close(fd);
	off = n > 0 ? find_bytes(buf, (size_t)n, restorer_pat,
				 sizeof(restorer_pat)) : len;
	free(buf);
	if (n <= 0 || off >= (size_t)n)
		return false;
	snprintf(cached_path, sizeof(cached_path), "%s", m->path);
	cached_off = m->off + off;
	*file_off = cached_off;
	return true;
}

/*
 * The trampoline's address in process pid.  RELIVE_TEST_RESTORER_SCAN set
 * (tests only) skips the two quick looks, so that the look through the
 * whole code, taken only where they fail, is exercised as well.
 */
static int libc_restorer(pid_t pid, uint64_t *addr, char *err, size_t errlen)
{
	static int scan_only = -1;
	struct proc_map *maps;
	uint64_t sigact = 0;
	const char *how = NULL;
	char ignored[256];
	size_t n, i;
	int rc = -ENOENT;

	if (scan_only < 0)
		scan_only = getenv("RELIVE_TEST_RESTORER_SCAN") != NULL;
	if (libc_symbol(pid, "sigaction", &sigact, ignored, sizeof(ignored)))
		sigact = 0; /* the whole code is looked through */
	if (proc_maps(pid, &maps, &n))
		return -ESRCH;
	for (i = 0; i < n && rc; i++) {
		size_t len = maps[i].hi - maps[i].lo, off;
		uint8_t *buf, here[sizeof(restorer_pat)];
		uint64_t file_off;

		if (maps[i].perms[2] != 'x' ||
		    !strstr(base_name(maps[i].path), "libc.so.6"))
			continue;
		if (!scan_only && sigact &&
		    restorer_near(pid, &maps[i], sigact, addr)) {
			how = "beside sigaction";
			rc = 0;
			break;
		}
		/* The file's copy tells where; the process's memory must
		 * agree (the same file, unchanged). */
		if (!scan_only && restorer_in_file(&maps[i], &file_off) &&
		    file_off >= maps[i].off && file_off - maps[i].off < len &&
		    !proc_read(pid, maps[i].lo + (file_off - maps[i].off), here,
			       sizeof(here)) &&
		    !memcmp(here, restorer_pat, sizeof(here))) {
			*addr = maps[i].lo + (file_off - maps[i].off);
			how = "in the file";
			rc = 0;
			break;
		}
		buf = malloc(len);
		if (!buf)
			break;
		off = proc_read(pid, maps[i].lo, buf, len) ? len :
			find_bytes(buf, len, restorer_pat, sizeof(restorer_pat));
		free(buf);
		if (off < len) {
			*addr = maps[i].lo + off;
			how = "by reading the whole code";
			rc = 0;
			break;
		}
	}
	if (!rc)
		vlog("libc's rt_sigreturn trampoline found %s: %s+%#llx", how,
		     base_name(maps[i].path),
		     (unsigned long long)(*addr - maps[i].lo + maps[i].off));
	free(maps);
	if (rc)
		snprintf(err, errlen, "process %d: no rt_sigreturn trampoline "
			 "in its C library; relive needs glibc", pid);
	return rc;
}

/* What several processes share, looked up once before `relive patch
 * --all` forks a child per process. */
void agent_warm(pid_t pid)
{
	uint64_t bias, addr;
	char err[256];

	(void)proc_libc(pid, &bias);
	(void)libc_restorer(pid, &addr, err, sizeof(err));
}

/*
 * Choosing a thread to borrow.  The borrowed thread runs the dynamic
 * loader (dlopen) and the agent, which allocate memory and take the
 * loader's and the agent's locks.  A thread stopped while it holds one of
 * those locks - inside malloc, inside the loader, inside the agent itself -
 * would deadlock on it, so a candidate's stack is unwound first and the
 * thread is only borrowed when no frame lies in such code.  A thread in a
 * system call whose restart depends on the kernel's restart block
 * (nanosleep, poll) is avoided too when another one will do, so returning
 * through rt_sigreturn never changes what it sees.
 */
struct deny {
	uint64_t lo, hi;
};

struct borrow_ctx {
	struct deny *d;
	size_t n, cap;
	bool hit;
};

static void deny_add(struct borrow_ctx *b, uint64_t lo, uint64_t hi)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 32;
		struct deny *nd = realloc(b->d, cap * sizeof(*nd));

		if (!nd)
			return;
		b->d = nd;
		b->cap = cap;
	}
	b->d[b->n].lo = lo;
	b->d[b->n++].hi = hi;
}

/* Functions of libc that hold its locks (or the loader's) while they run.
 * Only exported names are looked up (libc's .dynsym): a thread inside an
 * internal function such as _int_malloc has one of these among its
 * callers; the internal names count too when the symbol table has them. */
static const char *const libc_locked[] = {
	"malloc", "free", "calloc", "realloc", "reallocarray",
	"memalign", "posix_memalign", "aligned_alloc", "valloc",
	"pvalloc", "malloc_trim", "malloc_info", "malloc_stats", "mallopt",
	"mallinfo", "mallinfo2", "_int_malloc", "_int_free",
	"_int_realloc", "_int_memalign", "malloc_consolidate",
	"sysmalloc", "arena_get2", "tcache_init", "dl_iterate_phdr",
	"fork", "_Fork", "__libc_fork", "pthread_create", "dlopen",
	"dlclose", "dlsym", "dlvsym", "dladdr", "dladdr1", "dlinfo",
	"dlmopen", "dlerror", "__libc_dlopen_mode", "exit",
	"__run_exit_handlers", "__cxa_finalize",
};

/* The ranges of libc_locked as offsets from libc's load bias: looked up
 * once per libc file, which `relive patch --all` finds in every process. */
static void libc_deny_offsets(const struct elfsym_file *f,
			      struct borrow_ctx *b)
{
	size_t k;

	for (k = 0; k < sizeof(libc_locked) / sizeof(*libc_locked); k++) {
		struct elfsym_sym sym;
		unsigned cnt = 0, pos;

		if (elfsym_lookup(f, libc_locked[k], 0, &sym, &cnt) == 0) {
			deny_add(b, sym.value, sym.value + sym.size);
			continue;
		}
		for (pos = 1; pos <= cnt; pos++)
			if (!elfsym_lookup(f, libc_locked[k], pos, &sym, NULL))
				deny_add(b, sym.value, sym.value + sym.size);
	}
}

static void libc_deny_ranges(pid_t pid, struct borrow_ctx *b)
{
	static struct borrow_ctx off;
	static const struct elfsym_file *off_file;
	uint64_t bias;
	const struct elfsym_file *f = proc_libc(pid, &bias);
	size_t i;

	if (!f)
		return;
	if (off_file != f) {
		free(off.d);
		memset(&off, 0, sizeof(off));
		libc_deny_offsets(f, &off);
		off_file = f;
	}
	for (i = 0; i < off.n; i++)
		deny_add(b, bias + off.d[i].lo, bias + off.d[i].hi);
}

static void deny_ranges(pid_t pid, struct borrow_ctx *b)
{
	/* libc's ranges do not move: looked up once per command. */
	static struct borrow_ctx libc_deny;
	static pid_t libc_deny_pid;
	struct proc_map *maps;
	size_t n, i;

	if (proc_maps(pid, &maps, &n))
		return;
	for (i = 0; i < n; i++) {
		const char *bn = base_name(maps[i].path);

		if (maps[i].perms[2] != 'x')
			continue;
		if (!strncmp(bn, "ld-linux", 8) || !strcmp(bn, AGENT_FILE))
			deny_add(b, maps[i].lo, maps[i].hi);
	}
	free(maps);
	if (libc_deny_pid != pid) {
		free(libc_deny.d);
		memset(&libc_deny, 0, sizeof(libc_deny));
		libc_deny_pid = pid;
		libc_deny_ranges(pid, &libc_deny);
	}
	for (i = 0; i < libc_deny.n; i++)
		deny_add(b, libc_deny.d[i].lo, libc_deny.d[i].hi);
}

static int deny_cb(uint64_t pc, void *arg)
{
	struct borrow_ctx *b = arg;
	size_t i;

	for (i = 0; i < b->n; i++)
		if (pc >= b->d[i].lo && pc <= b->d[i].hi) {
			b->hit = true;
			return 1;
		}
	return 0;
}

/* prefer: a thread to try first while it lives (the agent's last server),
 * or 0. */
static int borrow(pid_t pid, pid_t prefer, struct stopped *st, char *err,
		  size_t errlen)
{
	struct borrow_ctx b = { 0 };
	struct unwinder *u = NULL;
	char ps = prefer > 0 ? proc_thread_state(pid, prefer) : 0;
	pid_t first = ps && ps != 'Z' && ps != 'X' ? prefer : pick_thread(pid),
	      fallback = 0;
	int round, rc = -EAGAIN;
	char why[256];

	deny_ranges(pid, &b);
	vlog("borrow: deny ranges ready");
	if (unwind_get(pid, &u, err, errlen)) {
		free(b.d);
		return -ESRCH;
	}
	vlog("borrow: unwinder ready");
	for (round = 0; round < 400 && rc; round++) {
		pid_t *tids;
		size_t n, i;

		if (proc_tasks(pid, &tids, &n)) {
			rc = -ESRCH;
			break;
		}
		/* the thread picked first */
		for (i = 0; i < n; i++)
			if (tids[i] == first) {
				tids[i] = tids[0];
				tids[0] = first;
			}
		for (i = 0; i < n && rc; i++) {
			int r;

			if (pt_stop(tids[i], st, err, errlen))
				continue;
			b.hit = false;
			r = unwind_thread(u, tids[i], &st->regs, deny_cb, &b,
					  why, sizeof(why));
			if (r == 0 && !b.hit) {
				if (!pt_in_restartblock(st)) {
					rc = 0;
					break;
				}
				if (!fallback)
					fallback = tids[i];
			}
			pt_release(st);
		}
		free(tids);
		if (rc && fallback) {
			/* Every safe thread sleeps in a restart-block call:
			 * re-issuing it on return is still right. */
			if (!pt_stop(fallback, st, err, errlen)) {
				b.hit = false;
				if (unwind_thread(u, fallback, &st->regs, deny_cb,
						  &b, why, sizeof(why)) == 0 &&
				    !b.hit)
					rc = 0;
				else
					pt_release(st);
			}
			fallback = 0;
		}
		if (rc && rc != -ESRCH)
			usleep(round < 20 ? 1000 : 10000);
		unwind_refresh(u);
	}
	free(b.d);
	if (!rc)
		vlog("borrow: thread %d held (%d round%s)", st->tid, round,
		     round == 1 ? "" : "s");
	if (rc == -EAGAIN)
		snprintf(err, errlen, "no thread of process %d could be "
			 "borrowed safely: every one was inside the memory "
			 "allocator, the dynamic loader or code without "
			 "unwind information; nothing was changed, try again",
			 pid);
	return rc;
}

/* Makes a borrowed thread call func(str, arg) when str is not NULL (str
 * is copied onto the thread's stack first), else func(arg), and waits for
 * the call to end. */
static int call_borrowed_how(pid_t pid, uint64_t func, const char *str,
			     uint64_t arg, uint64_t restorer,
			     const struct pt_then *then, pid_t *child,
			     char *err, size_t errlen)
{
	struct stopped st;
	uint64_t args[2] = { arg, 0 };
	int rc;

	rc = borrow(pid, 0, &st, err, errlen);
	if (rc)
		return rc;
	if (str) {
		/* Well below the red zone and the frame pt_call() builds. */
		args[0] = (st.regs.rsp - 32768 - strlen(str) - 1) & ~0xfull;
		args[1] = arg;
		rc = proc_write(pid, args[0], str, strlen(str) + 1);
		if (rc) {
			snprintf(err, errlen, "cannot write to process %d",
				 pid);
			pt_release(&st);
			return rc;
		}
	}
	if (child) {
		rc = pt_call_until_clone(pid, &st, func, args, 2, restorer,
					 child, err, errlen);
		if (rc == -ENOSYS) /* still held: followed as usual */
			rc = pt_call(&st, func, args, 2, restorer, false, then,
				     err, errlen);
	} else {
		rc = pt_call(&st, func, args, 2, restorer, false, then, err,
			     errlen);
	}
	pt_release(&st);
	return rc;
}

static int call_borrowed(pid_t pid, uint64_t func, const char *str,
			 uint64_t arg, uint64_t restorer,
			 const struct pt_then *then, char *err, size_t errlen)
{
	return call_borrowed_how(pid, func, str, arg, restorer, then, NULL,
				 err, errlen);
}

/* Where librelive-boot.so is mapped in pid, and its two symbols. */
static int boot_find(pid_t pid, const char *boot, uint64_t *state,
		     uint64_t *start, char *err, size_t errlen)
{
	const struct elfsym_file *f;
	struct elfsym_sym st_sym, start_sym;
	struct proc_map *maps;
	size_t n, i;
	int rc = -ENOENT;

	f = filecache_symbols(boot, err, errlen);
	if (!f)
		return -ENOENT;
	if (elfsym_lookup(f, "relive_boot", 0, &st_sym, NULL) ||
	    elfsym_lookup(f, "relive_boot_start", 0, &start_sym, NULL)) {
		snprintf(err, errlen, "%s is not relive's boot library", boot);
		return -ENOENT;
	}
	if (proc_maps(pid, &maps, &n))
		return -ESRCH;
	for (i = 0; i < n && rc; i++)
		if (!maps[i].off && !strcmp(maps[i].path, boot)) {
			uint64_t bias = maps[i].lo - elfsym_first_vaddr(f);

			*state = bias + st_sym.value;
			*start = bias + start_sym.value;
			rc = 0;
		}
	free(maps);
	return rc;
}

double mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/*
 * The n-th pause of a poll of the target (*start is set at n == 0): two
 * yields (the answer may be a few microseconds away), then sleeps of an
 * eighth of the time waited so far, from 20 us to 1 ms.  A longer run of
 * yields kept relive's CPU busy while the agent worked on the other one,
 * so a thread of the target woken meanwhile found no idle CPU and waited
 * for the agent's time slice to end: with 2 yields instead of 32, the
 * median 1ms-sleeper's longest gap during a 100-function patch went from
 * 0.61-0.67 to 0.39-0.54 ms.  Sleeps of a fixed 20 us then still woke
 * relive some 300 times while the agent loaded that patch (6 ms); growing
 * with the wait, they cost a request at most an eighth more time and took
 * relive's CPU time for the patch from 13.0 to 10.4 ms and its context
 * switches from 275 to 178 (medians of 8 runs each, alternating).  A
 * short request (`--all`: 0.1-0.3 ms) is polled every 20 us as before
 * (relive's timer slack is 1 us, so the sleeps are short).
 */
void poll_pause(unsigned n, double *start)
{
	double us;

	if (n == 0)
		*start = mono_us();
	if (n < 2) {
		sched_yield();
		return;
	}
	us = (mono_us() - *start) / 8;
	usleep(us < 20 ? 20 : us > 1000 ? 1000 : (useconds_t)us);
}

/* Waits until the 32-bit word at addr in pid is no longer `from`.
 * Returns 0 with *val, or -ESRCH when the process is gone. */
static int wait_word(pid_t pid, uint64_t addr, uint32_t from, uint32_t *val)
{
	double t0;

	for (unsigned n = 0;; n++) {
		if (proc_read(pid, addr, val, sizeof(*val)))
			return -ESRCH;
		if (*val != from)
			return 0;
		poll_pause(n, &t0);
	}
}

/* Waits, once relive_boot_start() has said RUNNING, until the boot thread
 * has written its number, or the state has moved on (no thread could be
 * started, or it is done already).  *val: the state; *tid: 0 or the
 * number. */
static int wait_boot_tid(pid_t pid, uint64_t state, uint32_t *val,
			 uint32_t *tid)
{
	uint32_t w[2]; /* struct relive_boot's state and tid, side by side */
	double t0;

	_Static_assert(offsetof(struct relive_boot, tid) ==
		       offsetof(struct relive_boot, state) + sizeof(uint32_t),
		       "state and tid are read together");

	for (unsigned n = 0;; n++) {
		if (proc_read(pid, state + offsetof(struct relive_boot, state),
			      w, sizeof(w)))
			return -ESRCH;
		*val = w[0];
		*tid = w[1];
		if (*tid || *val != RELIVE_BOOT_RUNNING)
			return 0;
		poll_pause(n, &t0);
	}
}

/* Waits until the boot thread tid has ended (or its number names another
 * thread already), looking at it now and then. */
static void wait_boot_thread_gone(pid_t pid, pid_t tid)
{
	double t0;

	/* Gone, or a thread of the program reused the number. */
	for (unsigned n = 0; proc_thread_named(pid, tid, "relive-boot"); n++)
		poll_pause(n, &t0);
}

/* What boot_inject() chains to the borrowed thread's dlopen of the boot
 * library, asked while the thread is still held after it: the library's
 * relive_boot_start(), once its relive_boot is made ready for it. */
struct boot_chain {
	pid_t pid;
	const char *real, *boot;
	bool was_loaded;        /* mapped before the dlopen */
	uint64_t state, start;  /* found after it; 0: not mapped */
	int rc;                 /* why start is 0 */
	char err[256];
};

static uint64_t boot_next(void *arg)
{
	struct boot_chain *bc = arg;
	uint32_t idle = RELIVE_BOOT_IDLE;

	vlog("the boot library's dlopen returned");
	bc->rc = boot_find(bc->pid, bc->boot, &bc->state, &bc->start,
			   bc->err, sizeof(bc->err));
	if (bc->rc) {
		bc->state = bc->start = 0;
		return 0;
	}
	/* Loaded now: its constructor has started the boot thread. */
	if (!bc->was_loaded)
		return 0;
	{
		/* Left by an earlier attempt: its state and agent path are
		 * that attempt's; this one loads the agent given here. */
		vlog("%s was loaded already: starting its thread", bc->boot);
		if (proc_write(bc->pid,
			       bc->state + offsetof(struct relive_boot, path),
			       bc->real, strlen(bc->real) + 1) ||
		    proc_write(bc->pid,
			       bc->state + offsetof(struct relive_boot, state),
			       &idle, sizeof(idle))) {
			snprintf(bc->err, sizeof(bc->err),
				 "cannot write to process %d", bc->pid);
			bc->rc = -ESRCH;
			bc->state = bc->start = 0;
			return 0;
		}
	}
	return bc->start;
}

/*
 * Loads the agent through librelive-boot.so (agent/boot.c): the borrowed
 * thread's dlopen is that of a library that needs nothing but libc, whose
 * constructor starts a thread that makes the agent's own dlopen.  relive
 * follows the borrowed thread until it makes that thread, then lets it
 * finish alone, and waits for the boot thread to end.  Where the borrowed
 * thread blocks every signal relive could mark the call with, it is
 * followed system call by system call instead, to the end of its call.
 * When the library was mapped already, the borrowed thread calls its
 * relive_boot_start() on its way home, chained to a dlopen that only
 * counts one more reference.  A failure takes the boot library out
 * again.  Returns 0 (the agent loaded), 1 when the boot library could not
 * start its thread and is out again (the agent is to be loaded the other
 * way), or a negative errno with err filled.
 */
static int boot_inject(pid_t pid, const char *real, const char *boot,
		       uint64_t dlopen_addr, uint64_t restorer, char *err,
		       size_t errlen)
{
	struct relive_boot *b = NULL;
	struct boot_chain bc = { .pid = pid, .real = real, .boot = boot,
				 .rc = -ENOENT };
	struct pt_then then = { boot_next, &bc };
	uint64_t state, start, handle = 0, dlclose_addr;
	uint32_t val = RELIVE_BOOT_IDLE, tid = 0;
	char why[sizeof(b->error)] = "";
	pid_t child = 0;
	int rc;

	/* Mapped already: a relive killed before it was done loaded it. */
	bc.was_loaded = !boot_find(pid, boot, &state, &start, err, errlen);

	err[0] = '\0';
	vlog("loading %s into process %d", boot, pid);
	if (!bc.was_loaded) {
		/* Followed only until its constructor makes the boot thread
		 * (pt_call_until_clone), not system call by system call. */
		rc = call_borrowed_how(pid, dlopen_addr, boot,
				       RTLD_NOW | RTLD_LOCAL, restorer, &then,
				       &child, err, errlen);
		if (rc == 0 || rc == 1) {
			bc.rc = boot_find(pid, boot, &bc.state, &bc.start,
					  bc.err, sizeof(bc.err));
			if (bc.rc)
				bc.state = bc.start = 0;
			/* The boot thread, unless the library is not there or
			 * did not say RUNNING before it made a thread: then
			 * the call had ended, and the program made it. */
			if (child && (!bc.start ||
				      proc_read(pid, bc.state +
						offsetof(struct relive_boot,
							 state),
						&val, sizeof(val)) ||
				      val != RELIVE_BOOT_RUNNING)) {
				pt_detach(child);
				child = 0;
			}
			vlog("the boot library's dlopen %s",
			     child ? "made the boot thread" :
				     "ended with no boot thread");
			rc = 0;
		}
	} else {
		rc = call_borrowed(pid, dlopen_addr, boot,
				   RTLD_NOW | RTLD_LOCAL, restorer, &then, err,
				   errlen);
	}
	if (rc)
		return rc;
	/* Not mapped: the process could not load it (agent_inject says
	 * why that may be). */
	if (!bc.start) {
		snprintf(err, errlen, "%s", bc.err);
		return bc.rc;
	}
	state = bc.state;
	if (child) {
		tid = (uint32_t)child;
	} else {
		/* relive_boot_start runs on its own now: wait for it to
		 * begin (it sets RUNNING before it starts the thread), then
		 * for the thread to say who it is. */
		rc = wait_word(pid, state + offsetof(struct relive_boot, state),
			       RELIVE_BOOT_IDLE, &val);
		if (!rc && val == RELIVE_BOOT_RUNNING)
			rc = wait_boot_tid(pid, state, &val, &tid);
		if (rc) {
			snprintf(err, errlen, "process %d exited while loading "
				 "the agent", pid);
			return -ESRCH;
		}
	}
	vlog("the boot thread loads the agent (thread %u)", tid);
	/* The thread ends right after the dlopen: wait for that, so relive
	 * never meets it among the program's threads and never unloads its
	 * code under it.  relive sleeps in waitpid(2) meanwhile, the thread
	 * traced but never stopped (from its start when relive saw it made);
	 * where it cannot be traced, relive looks at it now and then. */
	if (child)
		pt_wait_exit_traced(child);
	else if (tid && pt_wait_exit(pid, (pid_t)tid, "relive-boot") < 0)
		wait_boot_thread_gone(pid, (pid_t)tid);
	if (proc_read(pid, state + offsetof(struct relive_boot, state), &val,
		      sizeof(val))) {
		snprintf(err, errlen, "process %d exited while loading the "
			 "agent", pid);
		return -ESRCH;
	}
	vlog("the boot thread is done");
	if (val == RELIVE_BOOT_LOADED)
		return 0;
	proc_read(pid, state + offsetof(struct relive_boot, error), why,
		  sizeof(why) - 1);
	if (!why[0] && val == RELIVE_BOOT_RUNNING)
		snprintf(why, sizeof(why), "the boot thread ended before its "
			 "dlopen returned");
	proc_read(pid, state + offsetof(struct relive_boot, handle), &handle,
		  sizeof(handle));
	/* Take the boot library out again. */
	if (handle && !libc_symbol(pid, "dlclose", &dlclose_addr, err,
				   errlen) &&
	    !call_borrowed(pid, dlclose_addr, NULL, handle, restorer, NULL,
			   err, errlen)) {
		if (!tid) {
			/* No thread could be started (a limit on threads):
			 * the caller loads the agent the other way. */
			vlog("the boot thread could not start: %s", why);
			err[0] = '\0';
			return 1;
		}
		snprintf(err, errlen, "loading the agent %s into process %d "
			 "failed: %s; nothing of relive stays in the process",
			 real, pid, why);
		return -ENOENT;
	}
	if (!why[0])
		snprintf(why, sizeof(why), "the boot thread could not start");
	snprintf(err, errlen, "loading the agent %s into process %d failed: "
		 "%s; relive's boot library %s stays loaded in it (it does "
		 "nothing)", real, pid, why, boot);
	return -ENOENT;
}

int agent_inject(pid_t pid, struct agent *a, char *err, size_t errlen)
{
	const char *path = agent_default_path();
	char real[PATH_MAX], boot[PATH_MAX + 32], *slash;
	uint64_t dlopen_addr, restorer;
	int rc;

	if (!realpath(path, real)) {
		snprintf(err, errlen, "agent %s: %s; set RELIVE_AGENT to the "
			 "path of %s", path, strerror(errno), AGENT_FILE);
		return -ENOENT;
	}
	rc = libc_symbol(pid, "dlopen", &dlopen_addr, err, errlen);
	if (!rc)
		rc = libc_restorer(pid, &restorer, err, errlen);
	if (rc)
		return rc;
	/* The boot library lives beside the agent; without it, the thread
	 * borrowed for the agent's own dlopen is followed through it. */
	snprintf(boot, sizeof(boot), "%s", real);
	slash = strrchr(boot, '/');
	snprintf(slash + 1, sizeof(boot) - (size_t)(slash + 1 - boot), "%s",
		 BOOT_FILE);
	err[0] = '\0';
	rc = 1;
	/* The boot library loads the agent beside it, by its usual name. */
	if (!strcmp(base_name(real), AGENT_FILE) && access(boot, R_OK) == 0)
		rc = boot_inject(pid, real, boot, dlopen_addr, restorer, err,
				 errlen);
	if (rc == 1)
		rc = call_borrowed(pid, dlopen_addr, real,
				   RTLD_NOW | RTLD_LOCAL, restorer, NULL, err,
				   errlen);
	if (rc && rc != -ENOENT)
		return rc;
	if (rc == -ENOENT && err[0])
		return rc;
	proc_maps_forget(); /* the boot thread mapped the agent meanwhile */
	rc = agent_find(pid, a, err, errlen);
	if (!rc && !a->loaded) {
		snprintf(err, errlen,
			 "loading the agent %s into process %d failed: the "
			 "process may not be able to read that file (another "
			 "user, another mount namespace), or has no static TLS "
			 "left for it; nothing was changed", real, pid);
		rc = -ENOENT;
	}
	return rc;
}

/*
 * Wakes the agent's own thread (agent/service.c) with one byte in its pipe.
 * Returns its thread ID, or 0 when there is no such thread or its pipe is
 * not the one the agent named (the program closed the descriptor and
 * reused the number): then a thread is borrowed instead.  The pipe opened
 * for one process is kept for its next requests while the agent names the
 * same one (a patch makes two or three).
 */
static pid_t service_ring(struct agent *a)
{
	static struct {
		int fd;               /* ours, or -1 */
		pid_t pid;
		int32_t num;          /* the agent's descriptor number */
		uint64_t ino;
	} ring = { -1, 0, 0, 0 };
	struct {
		uint32_t tid;
		int32_t fd;
		uint64_t ino;
	} svc = { a->c.svc_tid, a->c.svc_fd, a->c.svc_ino };
	char path[64];
	struct stat st;

	/* What agent_request() read just before is used first.  A thread
	 * just started (the agent's constructor, a moment ago at injection)
	 * says it is there once it has warmed up; on a busy machine that can
	 * be after our first request.  Wait for it rather than borrow a
	 * thread of the program: only the agent's own thread can switch the
	 * sleeping threads in the request (agent/sleepers.c). */
	for (unsigned n = 0;; n++) {
		if (n && proc_read(a->pid,
				   a->ctl + offsetof(struct relive_ctl, svc_tid),
				   &svc, sizeof(svc)))
			return 0;
		if (svc.fd < 0)
			return 0;
		if (svc.tid)
			break;
		if (n == 4000)
			return 0; /* 2 s: borrow */
		usleep(500);
	}
	if (ring.fd >= 0 && (ring.pid != a->pid || ring.num != svc.fd ||
			     ring.ino != svc.ino)) {
		close(ring.fd);
		ring.fd = -1;
	}
	if (ring.fd < 0) {
		snprintf(path, sizeof(path), "/proc/%d/fd/%d", a->pid,
			 svc.fd);
		ring.fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
		if (ring.fd < 0)
			return 0;
		if (fstat(ring.fd, &st) || !S_ISFIFO(st.st_mode) ||
		    (uint64_t)st.st_ino != svc.ino) {
			close(ring.fd);
			ring.fd = -1;
			return 0;
		}
		ring.pid = a->pid;
		ring.num = svc.fd;
		ring.ino = svc.ino;
	}
	return write(ring.fd, "r", 1) == 1 ? (pid_t)svc.tid : 0;
}

/*
 * The agent's "done" page (ctl.h, done_page), mapped here through
 * /proc/PID/map_files after checking that it is the agent's file; NULL
 * when the agent has none or it cannot be mapped (no CAP_SYS_ADMIN: then
 * the caller polls).  Kept mapped for the same process's next requests.
 */
static uint32_t *done_map(struct agent *a)
{
	static struct {
		uint32_t *w;          /* ours, or NULL */
		pid_t pid;            /* the process it is, or was refused, for */
		uint64_t page, ino;
	} m = { NULL, 0, 0, 0 };
	struct {
		uint64_t page, ino;
	} d;
	char path[96];
	struct stat st;
	void *p;
	int fd;

	/* As agent_request() read it just before; an agent that had none
	 * then may have made it since (its thread started meanwhile). */
	d.page = a->c.done_page;
	d.ino = a->c.done_ino;
	if (!d.page &&
	    proc_read(a->pid, a->ctl + offsetof(struct relive_ctl, done_page),
		      &d, sizeof(d)))
		return NULL;
	if (!d.page)
		return NULL;
	if (m.pid == a->pid && m.page == d.page && m.ino == d.ino)
		return m.w; /* mapped, or refused already */
	/* The page of the process before stays mapped until relive exits
	 * (4 KiB per process; a worker of --all patches hundreds): unmapping
	 * it cost a TLB flush per process, 7% of relive's CPU time there. */
	m.w = NULL;
	m.pid = a->pid;
	m.page = d.page;
	m.ino = d.ino;
	snprintf(path, sizeof(path), "/proc/%d/map_files/%llx-%llx", a->pid,
		 (unsigned long long)d.page, (unsigned long long)d.page + 4096);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_ino != d.ino || st.st_size < 4096) {
		close(fd);
		return NULL;
	}
	p = mmap(NULL, 4096, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return NULL;
	vlog("the agent's done page mapped: waits sleep until woken");
	m.w = p;
	return m.w;
}

/*
 * Has the agent serve one request: its own thread when it has one, else a
 * borrowed thread of the target.  msg receives the agent's
 * message.  Returns the agent's status (0 or a negative errno) or a
 * negative errno of the controller's own.
 */
int agent_request(struct agent *a, uint32_t op, const char *arg, char *msg,
		  size_t msglen)
{
	struct relive_ctl *c = NULL;
	char argbuf[sizeof(c->arg)] = "";
	uint64_t seq, done;
	struct stopped st;
	uint32_t *w;
	double t0;
	pid_t tid;
	int rc;

	msg[0] = '\0';
	a->ctl_fresh = false;
	proc_maps_forget(); /* the request may map or unmap objects */
	if (arg)
		snprintf(argbuf, sizeof(argbuf), "%s", arg);
	/* done_seq, the agent's thread and pipe and its done page (ctl.h):
	 * adjacent, read in one system call for the ring and the wait. */
	rc = proc_read(a->pid, a->ctl + offsetof(struct relive_ctl, done_seq),
		       &a->c.done_seq, CTL_TAIL_LEN);
	seq = a->c.done_seq + 1;
	if (!rc) {
		/* The argument (as long as the string), the operation, its
		 * flag and thread count, the sequence number, and with a LOAD
		 * the resolution
		 * (ctl.h, struct relive_res): one system call. */
		struct relive_res head;
		uint32_t flags[2] = { a->load_near_main, a->threads };
		struct iovec l[11] = {
			{ argbuf, strlen(argbuf) + 1 },
			{ &op, sizeof(op) },
			{ flags, sizeof(flags) },
			{ &seq, sizeof(seq) },
		}, r[11];
		static const size_t at[4] = {
			offsetof(struct relive_ctl, arg),
			offsetof(struct relive_ctl, op),
			offsetof(struct relive_ctl, load_near_main),
			offsetof(struct relive_ctl, req_seq),
		};
		size_t i, n = 4, len = 0;

		_Static_assert(offsetof(struct relive_ctl, threads) ==
				       offsetof(struct relive_ctl,
						load_near_main) + 4,
			       "load_near_main and threads are written as one");
		for (i = 0; i < 4; i++)
			r[i].iov_base = (void *)(uintptr_t)(a->ctl + at[i]);
		if ((op == RELIVE_OP_LOAD || op == RELIVE_OP_LOAD_ENABLE) &&
		    a->res && a->res->nobjs && a->c.res) {
			memcpy(&head, a->res, offsetof(struct relive_res, funcs));
			head.seq = seq;
			l[n].iov_base = &head;
			l[n].iov_len = offsetof(struct relive_res, objs) +
				       head.nobjs * sizeof(head.objs[0]);
			r[n++].iov_base = (void *)(uintptr_t)a->c.res;
			l[n].iov_base = (void *)a->res->funcs;
			l[n].iov_len = head.nfuncs * sizeof(head.funcs[0]);
			r[n++].iov_base = (void *)(uintptr_t)(
				a->c.res + offsetof(struct relive_res, funcs));
			l[n].iov_base = (void *)a->res->sites;
			l[n].iov_len = head.nfuncs * sizeof(head.sites[0]);
			r[n++].iov_base = (void *)(uintptr_t)(
				a->c.res + offsetof(struct relive_res, sites));
			l[n].iov_base = (void *)a->res->calls;
			l[n].iov_len = head.ncalls * sizeof(head.calls[0]);
			r[n++].iov_base = (void *)(uintptr_t)(
				a->c.res + offsetof(struct relive_res, calls));
			l[n].iov_base = (void *)a->res->refs;
			l[n].iov_len = head.nrefs * sizeof(head.refs[0]);
			r[n++].iov_base = (void *)(uintptr_t)(
				a->c.res + offsetof(struct relive_res, refs));
			l[n].iov_base = (void *)a->res->ref_names;
			l[n].iov_len = head.ref_names_len;
			r[n++].iov_base = (void *)(uintptr_t)(
				a->c.res + offsetof(struct relive_res,
						    ref_names));
			l[n].iov_base = (void *)a->res->xobjs;
			l[n].iov_len = head.nxobjs * sizeof(head.xobjs[0]);
			r[n++].iov_base = (void *)(uintptr_t)(
				a->c.res + offsetof(struct relive_res, xobjs));
		}
		for (i = 0; i < n; i++) {
			r[i].iov_len = l[i].iov_len;
			len += l[i].iov_len;
		}
		if (process_vm_writev(a->pid, l, n, r, n, 0) != (ssize_t)len)
			rc = -EIO;
	}
	if (rc) {
		snprintf(msg, msglen, "cannot write to process %d", a->pid);
		return rc;
	}
	vlog("request %u to the agent", op);
	tid = service_ring(a);
	if (tid) {
		vlog("the agent's thread %d woken", tid);
	} else {
		rc = borrow(a->pid, (pid_t)a->c.server_tid, &st, msg, msglen);
		if (rc)
			return rc;
		tid = st.tid;
		vlog("thread %d borrowed", tid);
		rc = pt_call(&st, a->request, NULL, 0, a->restorer, true, NULL,
			     msg, msglen);
		pt_release(&st);
		if (rc)
			return rc;
	}
	/* The thread serves the request untraced: no stop at each of its
	 * system calls.  Wait for the agent to say it is done: asleep on
	 * its done page when it can be mapped (until its word says the
	 * request may be served, or 10 ms passed, to check that the thread
	 * still exists), else polling.  done_seq decides. */
	w = done_map(a);
	for (unsigned n = 0;; n++) {
		if (w) {
			struct timespec ts = { 0, 10 * 1000 * 1000 };
			uint32_t v = __atomic_load_n(w, __ATOMIC_ACQUIRE);

			if (v != (uint32_t)seq)
				(void)syscall(SYS_futex, w, FUTEX_WAIT, v, &ts,
					      NULL, 0);
		}
		if (proc_read(a->pid,
			      a->ctl + offsetof(struct relive_ctl, done_seq),
			      &done, sizeof(done))) {
			snprintf(msg, msglen, "process %d exited during the "
				 "request", a->pid);
			return -ESRCH;
		}
		if (done == seq)
			break;
		if ((w || n % 64 == 63) &&
		    syscall(SYS_tgkill, a->pid, tid, 0)) {
			snprintf(msg, msglen, "thread %d of process %d exited "
				 "during the request", tid, a->pid);
			return -ESRCH;
		}
		if (!w)
			poll_pause(n, &t0);
	}
	vlog("request %u served", op);
	if (agent_read_ctl(a)) {
		snprintf(msg, msglen, "cannot read the agent of process %d",
			 a->pid);
		return -EIO;
	}
	a->ctl_fresh = true;
	if (a->c.written_alone)
		vlog("%u one-byte code write%s made by the agent, no thread "
		     "held", a->c.written_alone,
		     a->c.written_alone == 1 ? "" : "s");
	a->c.msg[sizeof(a->c.msg) - 1] = '\0';
	snprintf(msg, msglen, "%s", a->c.msg);
	return a->c.status;
}

char *agent_read_snapshot(struct agent *a)
{
	int tries;

	for (tries = 0; tries < 1000; tries++) {
		uint64_t seq = a->c.snap_seq;
		char *buf;

		if (agent_read_ctl(a))
			return NULL;
		seq = a->c.snap_seq;
		if (seq & 1)
			continue;
		buf = malloc(a->c.snap_len + 1);
		if (!buf)
			return NULL;
		if (a->c.snap && !proc_read(a->pid, a->c.snap, buf,
					    a->c.snap_len)) {
			uint64_t again;

			buf[a->c.snap_len] = '\0';
			if (!proc_read(a->pid, a->ctl + offsetof(struct relive_ctl,
								 snap_seq),
				       &again, sizeof(again)) &&
			    again == seq)
				return buf;
		}
		free(buf);
	}
	return NULL;
}
