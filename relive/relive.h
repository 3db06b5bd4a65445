/*
 * relive/relive.h - what the files of the controller (the `relive` command)
 * share.  See docs/architecture.md for the division of work between the
 * controller and the agent.
 */
#ifndef RELIVE_RELIVE_H
#define RELIVE_RELIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "ctl.h"

/* Exit statuses of the command line. */
enum {
	EXIT_DONE = 0,
	EXIT_REFUSED = 1,
	EXIT_USAGE = 2,
	EXIT_TIMEOUT = 3,
};

/* Error reporting: one line on stderr, "relive: ..." */
void die_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern bool verbose;
void vlog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* proc.c: reading /proc and the target's memory */
struct proc_map {
	uint64_t lo, hi, off;
	char perms[5];
	const char *path; /* "" for none; in the block of the array, freed
			   * with it (one free() for the whole array) */
};
/* The process exists and relive may trace it; proc_check() also refuses
 * one that another tracer (a debugger) holds. */
int proc_access(pid_t pid, char *err, size_t errlen);
int proc_check(pid_t pid, long *threads, char *err, size_t errlen);
int proc_tasks(pid_t pid, pid_t **tids, size_t *n);
int proc_maps(pid_t pid, struct proc_map **maps, size_t *n);
/* The map may have changed (see proc.c): read it again next time. */
void proc_maps_forget(void);
/* Finds a loaded object: name NULL or "main" for the executable, else
 * DT_SONAME or file name.  Returns 0 with path and bias, -ENOENT.  The
 * path of a file replaced since it was mapped (" (deleted)" in the map)
 * is its /proc/PID/map_files entry: what the process runs, readable with
 * CAP_SYS_ADMIN only (-EACCES, with that path, when it cannot be read). */
struct elfsym_file;
/* The libc process pid maps (NULL: none), kept open for the command. */
const struct elfsym_file *proc_libc(pid_t pid, uint64_t *bias);
/* The executable mappings of libc and the dynamic loader (a malloc'd
 * copy): neither is ever unmapped, so the first answer for a process is
 * kept, and asking before a request spares a read of its map after. */
int proc_sys_code(pid_t pid, struct proc_map **maps, size_t *n);
int proc_find_object(pid_t pid, const char *name, char *path, size_t pathlen,
		     uint64_t *bias);
int proc_read(pid_t pid, uint64_t addr, void *buf, size_t len);
int proc_write(pid_t pid, uint64_t addr, const void *buf, size_t len);
char proc_thread_state(pid_t pid, pid_t tid);
/* The same, and the CPU time the thread has used so far (utime + stime,
 * in clock ticks) in *ticks. */
char proc_thread_load(pid_t pid, pid_t tid, unsigned long long *ticks);
/* Whether thread tid of pid exists and is named comm now. */
bool proc_thread_named(pid_t pid, pid_t tid, const char *comm);
/* The signals thread tid of pid blocks (SigBlk); false when unreadable. */
bool proc_thread_sigmask(pid_t pid, pid_t tid, uint64_t *mask);
/* Field 22 of /proc/PID/stat: tells the process from a later one with the
 * same ID; 0 if it cannot be read. */
unsigned long long proc_start_time(pid_t pid);

/* filecache.c: object files, each read once per command (elfsym.h);
 * NULL with err filled when the file cannot be read */
const struct elfsym_file *filecache_header(const char *path, char *err,
					   size_t errlen);
const struct elfsym_file *filecache_symbols(const char *path, char *err,
					    size_t errlen);
/* Do two stats name the same, unchanged file (device, inode, size, mtime)? */
struct stat;
bool filecache_same_file(const struct stat *a, const struct stat *b);
/* The identity (device, inode, size, mtime) of the file whose symbols f
 * are, as the cache last checked it; false when f is not the cache's. */
bool filecache_identity(const struct elfsym_file *f, struct stat *st);
/* Starts a new target process: files are checked against the disk again. */
void filecache_epoch(void);

/* ptrace.c: stopping one thread, calling a function on it */
struct stopped {
	pid_t tid;
	struct user_regs_struct regs;  /* as stopped */
	bool dirty;                    /* regs changed: write back */
	bool released;
};
int pt_stop(pid_t tid, struct stopped *st, char *err, size_t errlen);
int pt_release(struct stopped *st);
/* Writes changed registers now, while the thread stays held. */
int pt_flush_regs(struct stopped *st);
/* What a traced call (pt_call without detach) makes the thread call next,
 * on its way home: asked once func has returned, while the thread is
 * still held; 0 for nothing.  A hook may read and write the target. */
struct pt_then {
	uint64_t (*next)(void *arg);
	void *arg;
};
int pt_call(struct stopped *st, uint64_t func, const uint64_t *args,
	    int nargs, uint64_t restorer, bool detach,
	    const struct pt_then *then, char *err, size_t errlen);
bool pt_in_restartblock(const struct stopped *st);
/* A thread that has not run yet: stopped on its way out of the clone(2)
 * or clone3(2) that made it, before its first instruction (the one after
 * the system call). */
bool pt_is_newborn(pid_t pid, const struct stopped *st);
/* Waits until thread tid of pid, named comm, has ended, without stopping
 * it: traced (PTRACE_SEIZE, no options) so that waitpid(2) sleeps until
 * the kernel says it ended; signals for it are passed on, a group stop is
 * kept.  0: ended (or gone already); 1: the number names another thread
 * now, let go at once; or a negative errno when it cannot be traced. */
int pt_wait_exit(pid_t pid, pid_t tid, const char *comm);
/* The same for a thread relive traces already: running, or held by
 * pt_call_until_clone (it is let run first). */
int pt_wait_exit_traced(pid_t tid);
/* Stops tracing a held thread. */
void pt_detach(pid_t tid);
/*
 * Calls func(args...) on the stopped thread of pid as pt_call does, but
 * follows it only until it makes a thread (PTRACE_O_TRACECLONE), not
 * system call by system call: the thread that made it is then let go, to
 * finish the call and get home alone, and the new one is held before its
 * first instruction, its number in *child, for the caller to tell whether
 * it is the thread it expected: then pt_wait_exit_traced, else
 * pt_detach (a thread the program made after the call ended).  Whether the call ended
 * without making one is seen in the thread's signal mask: blocked a
 * signal more for the call, it is its own again once the thread is home.
 * Returns 0 (a thread was made), 1 (the call ended without one; the
 * thread is home and let go), -ENOSYS (the thread blocks every signal
 * that could mark the call: nothing was done, it is still held), or a
 * negative errno.
 */
int pt_call_until_clone(pid_t pid, struct stopped *st, uint64_t func,
			const uint64_t *args, int nargs, uint64_t restorer,
			pid_t *child, char *err, size_t errlen);
int pt_stop_all(pid_t pid, struct stopped **list, size_t *n, char *err,
		size_t errlen);
void pt_release_all(struct stopped *list, size_t n);

/* inject.c: the agent in the target */
struct agent {
	pid_t pid;
	bool loaded;
	char path[4096];
	uint64_t ctl;        /* address of relive_agent_ctl */
	uint64_t request;    /* address of relive_agent_request */
	uint64_t restorer;   /* address of relive_agent_restorer */
	struct relive_ctl c; /* last copy read */
	bool completed;      /* this command's COMPLETE request succeeded */
	uint32_t load_near_main; /* sent with each request (ctl.h) */
	const struct relive_res *res; /* sent with LOAD requests (ctl.h) */
	uint32_t threads;    /* sent with each request (ctl.h); 0: unknown */
	bool ctl_fresh;      /* c was read at the end of the last request,
				nothing asked of the agent since */
};
const char *agent_default_path(void);
void agent_warm(pid_t pid);
int agent_find(pid_t pid, struct agent *a, char *err, size_t errlen);
int agent_inject(pid_t pid, struct agent *a, char *err, size_t errlen);
int agent_request(struct agent *a, uint32_t op, const char *arg, char *msg,
		  size_t msglen);
int agent_read_ctl(struct agent *a);
char *agent_read_snapshot(struct agent *a);
pid_t pick_thread(pid_t pid);
/* Microseconds of CLOCK_MONOTONIC. */
double mono_us(void);
/* The n-th pause of a poll of the target (*start set at n == 0): two
 * yields, then sleeps of an eighth of the time waited, 20 us to 1 ms. */
void poll_pause(unsigned n, double *start);

/* resolution.c: what the checks found in the symbol tables, for the agent
 * (common/ctl.h, struct relive_res) */
struct patchfile;
struct elfsym_file;
struct elfsym_sym;
/* Lays out r for pf, with the new versions' addresses; no object yet. */
void resolution_start(struct relive_res *r, const struct patchfile *pf);
/* The new versions' sizes, from f, the patch file's symbols. */
void resolution_patch(struct relive_res *r, const struct patchfile *pf,
		      const struct elfsym_file *f);
/* Before a process's checks: no object is resolved, no site made. */
void resolution_forget_objects(struct relive_res *r);
/* Where the site of function func of object obj goes; NULL: the patch
 * has no table. */
struct relive_res_site *resolution_site(struct relive_res *r,
					const struct patchfile *pf,
					size_t obj, size_t func);
/* Function func of object obj is sym in f; then object obj, all of whose
 * functions were given, is f. */
void resolution_func(struct relive_res *r, const struct patchfile *pf,
		     size_t obj, size_t func, const struct elfsym_file *f,
		     const struct elfsym_sym *sym);
void resolution_object(struct relive_res *r, size_t obj,
		       const struct elfsym_file *f);
/* The patch's KLP_SYMBOL references into object obj, looked up in f (the
 * file whose build-id resolution_object() records) and listed for the
 * agent.  Returns 0, or a negative errno with err set when one names no
 * symbol, or no single one, of f: the patch is refused before the target
 * is touched. */
int resolution_refs(struct relive_res *r, const struct patchfile *pf,
		    size_t obj, const struct elfsym_file *f, char *err,
		    size_t errlen);
/* The same for the references into objects the patch does not replace
 * functions of, each found loaded in process pid and read from the file
 * it runs (listed in r->xobjs); one not loaded is left to the agent. */
int resolution_other_refs(struct relive_res *r, const struct patchfile *pf,
			  pid_t pid, char *err, size_t errlen);
/* The entries of object obj's functions, in order; NULL: no table. */
struct relive_res_func *resolution_funcs_of(struct relive_res *r,
					    const struct patchfile *pf,
					    size_t obj);

/* calls.c: the direct calls to object obj's functions (resolved already),
 * found in its file at path, whose symbols are f, for the agent
 * (common/ctl.h, struct relive_res, calls).  Nothing when they do not
 * fit: the agent then looks itself. */
void calls_find(struct relive_res *r, const struct patchfile *pf, size_t obj,
		const struct elfsym_file *f, const char *path);

/* sites.c: the site of function func of object obj, at addr in process
 * pid, size bytes, decoded for the agent (common/ctl.h, struct
 * relive_res_site). */
void sites_prepare(struct relive_res *r, const struct patchfile *pf,
		   size_t obj, size_t func, pid_t pid, uint64_t addr,
		   uint64_t size);

/* codewrite.c: carrying out the agent's plan of code writes */
int codewrite_apply(struct agent *a, char *err, size_t errlen);

/* lock.c: one relive command per process at a time.  target_lock()
 * releases the lock held before, if any; -EBUSY with err set when another
 * command holds it. */
int target_lock(pid_t pid, char *err, size_t errlen);
void target_unlock(void);

/* transition.c: 0 done, 1 timed out (still in progress), < 0 failed */
int transition_drive(struct agent *a, double timeout, char *err,
		     size_t errlen);
int transition_cleanup(struct agent *a, char *err, size_t errlen);
int transition_enable(struct agent *a, const char *name, double timeout,
		      char *err, size_t errlen);
int transition_disable(struct agent *a, const char *name, double timeout,
		       char *err, size_t errlen);

/* list.c */
int list_print(pid_t pid, bool json);

#endif
