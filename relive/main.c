/*
 * relive/main.c - the `relive` command line.
 *
 * Commands mirror the kernel's livepatch interface: `patch` loads and
 * enables a patch (kernel: insmod of a livepatch module), `disable` writes
 * 0 to its `enabled`, `remove` unloads a disabled patch (rmmod), `list`
 * shows /sys/kernel/livepatch for one process.  Exit statuses: 0 done,
 * 1 refused or failed with nothing changed, 2 usage error, 3 a transition
 * did not finish in time (it stays in progress, safe).
 */
#include <errno.h>
#include <signal.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <elf.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "background.h"
#include "elfsym.h"
#include "patchfile.h"
#include "relive.h"

bool verbose;

void die_msg(const char *fmt, ...)
{
	va_list ap;

	fputs("relive: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void vlog(const char *fmt, ...)
{
	va_list ap;

	static double t0;
	struct timespec ts;
	double t;

	if (!verbose)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	t = ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
	if (!t0)
		t0 = t;
	fprintf(stderr, "relive: [%8.3f ms] ", t - t0);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static const char usage_text[] =
	"usage: relive COMMAND [OPTIONS]\n"
	"\n"
	"Live-patch a running process: replace functions without a restart.\n"
	"\n"
	"Commands:\n"
	"  patch -p PID FILE.so [--timeout S]   load and enable a patch\n"
	"  patch --all FILE.so [--timeout S]    ... in every process that maps its objects\n"
	"  disable -p PID NAME [--timeout S]    disable an enabled patch\n"
	"  remove -p PID NAME                   unload a disabled patch\n"
	"  list -p PID [--json]                 show the patches of a process\n"
	"  wait -p PID [--timeout S]            drive a transition in progress\n"
	"  force -p PID NAME                    complete a transition at once\n"
	"  run -- CMD [ARGS...]                 start CMD with the agent preloaded\n"
	"\n"
	"Options:\n"
	"  --help       this text (or `relive COMMAND --help`)\n"
	"  --version    the version of relive\n"
	"  -v           say what relive does, step by step\n"
	"\n"
	"Exit status: 0 done; 1 refused or failed, the process unchanged;\n"
	"2 usage error; 3 a transition did not finish within the timeout.\n"
	"A patch's NAME is its file name without \".so\".\n";

static const struct {
	const char *name, *help;
} command_help[] = {
	{ "patch",
	  "usage: relive patch -p PID FILE.so [--timeout SECONDS]\n"
	  "       relive patch --all FILE.so [--timeout SECONDS]\n"
	  "\n"
	  "Loads the patch FILE.so into process PID (loading relive's agent\n"
	  "first if needed) and enables it.  Every check that can fail is made\n"
	  "before the process is touched: the file is a relive patch, every\n"
	  "object's build-id matches, every function exists and is unique (or\n"
	  "has old_sympos).  Then each thread is switched to the new code once\n"
	  "none of the replaced functions is on its stack; --timeout bounds that\n"
	  "wait (default 60 seconds; exit 3 leaves the transition in progress\n"
	  "for relive wait, disable or force).\n"
	  "\n"
	  "--all patches every process that maps one of the patch's objects\n"
	  "(matched by build-id when the patch pins one, by name otherwise; the\n"
	  "executable only by build-id), prints one line per process and a\n"
	  "summary; exit 1 if any process failed.\n" },
	{ "disable",
	  "usage: relive disable -p PID NAME [--timeout SECONDS]\n"
	  "\n"
	  "Disables the patch NAME in process PID: its functions run the\n"
	  "version below them again (the previous patch, or the original).\n" },
	{ "remove",
	  "usage: relive remove -p PID NAME\n"
	  "\n"
	  "Unloads the disabled patch NAME from process PID.  Refused while the\n"
	  "patch is enabled, and for a forced patch.\n" },
	{ "list",
	  "usage: relive list -p PID [--json]\n"
	  "\n"
	  "Shows the agent, the transition in progress and the patches of\n"
	  "process PID, without stopping it.  --json prints one JSON object:\n"
	  "{pid, agent:{loaded,version}, transition, patches:[...]}.\n" },
	{ "wait",
	  "usage: relive wait -p PID [--timeout SECONDS]\n"
	  "\n"
	  "Drives the transition in progress in process PID until every thread\n"
	  "is switched (exit 0) or the timeout passes (exit 3, the transition\n"
	  "stays in progress).\n" },
	{ "force",
	  "usage: relive force -p PID NAME\n"
	  "\n"
	  "Completes the transition of patch NAME at once, marking every\n"
	  "thread switched (kernel: force).  Use it only when you know the\n"
	  "threads that block it cannot be harmed: a forced patch can never be\n"
	  "removed.\n" },
	{ "run",
	  "usage: relive run -- CMD [ARGS...]\n"
	  "\n"
	  "Runs CMD with relive's agent preloaded, so patching it later needs\n"
	  "no injection.\n" },
};

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("relive: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'relive --help'.\n", stderr);
	return EXIT_USAGE;
}

static int command_usage(const char *cmd)
{
	size_t i;

	for (i = 0; i < sizeof(command_help) / sizeof(command_help[0]); i++)
		if (!strcmp(command_help[i].name, cmd)) {
			fputs(command_help[i].help, stdout);
			return EXIT_DONE;
		}
	fputs(usage_text, stdout);
	return EXIT_DONE;
}

struct opts {
	bool all;
	pid_t pid;
	double timeout;
	bool json;
	bool help;
	char *arg;
};

static int parse_pid(const char *s, pid_t *pid)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v <= 0 || v > INT_MAX)
		return -1;
	*pid = (pid_t)v;
	return 0;
}

/* Parses the options of a command that takes -p PID and one argument. */
static int parse(const char *cmd, int argc, char **argv, struct opts *o,
		 bool want_arg, bool allow_timeout, bool allow_json)
{
	static const struct option longopts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "all", no_argument, NULL, 'a' },
		{ "verbose", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	o->timeout = 60;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":p:hv", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (parse_pid(optarg, &o->pid))
				return usage_error("%s: '%s' is not a process ID",
						   cmd, optarg);
			break;
		case 't': {
			char *end;

			o->timeout = strtod(optarg, &end);
			if (!allow_timeout || *end || o->timeout < 0)
				return usage_error("%s: bad --timeout '%s'",
						   cmd, optarg);
			break;
		}
		case 'j':
			if (!allow_json)
				return usage_error("%s: unknown option --json",
						   cmd);
			o->json = true;
			break;
		case 'h':
			o->help = true;
			return 0;
		case 'a':
			if (strcmp(cmd, "patch"))
				return usage_error("%s: unknown option --all",
						   cmd);
			o->all = true;
			break;
		case 'v':
			verbose = true;
			break;
		case ':':
			return usage_error("%s: option %s needs a value", cmd,
					   argv[optind - 1]);
		default:
			return usage_error("%s: unknown option '%s'", cmd,
					   argv[optind - 1]);
		}
	}
	if (o->all && o->pid)
		return usage_error("%s: give either -p PID or --all", cmd);
	if (!o->pid && !o->all)
		return usage_error("%s: which process? give -p PID", cmd);
	if (want_arg) {
		if (optind >= argc)
			return usage_error("%s: missing %s", cmd,
					   !strcmp(cmd, "patch") ? "FILE.so" :
								   "NAME");
		o->arg = argv[optind++];
	}
	if (optind < argc)
		return usage_error("%s: unexpected argument '%s'", cmd,
				   argv[optind]);
	return 0;
}

/* What this command's checks found in the symbol tables, sent to the
 * agent with the request that loads the patch (resolution.c). */
static struct relive_res patch_res;

static const char *objname(const char *n)
{
	return n ? n : "main";
}

/*
 * Checks the patch against the objects the target has mapped, before
 * anything is written: build-ids, and every function present, unique or
 * with a valid sympos.  Objects not loaded are checked when they load.
 */
static int precheck(pid_t pid, const struct patchfile *pf,
		    struct relive_res *res, char *err, size_t errlen)
{
	size_t i, j;

	resolution_forget_objects(res);
	for (i = 0; i < pf->nobjs; i++) {
		const struct pf_object *o = &pf->objs[i];
		const struct elfsym_file *f;
		char path[4096];
		uint64_t bias;
		int rc;

		rc = proc_find_object(pid, o->name, path, sizeof(path),
				      &bias);
		if (rc == -EACCES) {
			snprintf(err, errlen,
				 "%s: object '%s': its file was replaced on disk "
				 "after process %d loaded it, and reading the "
				 "loaded one (%s) takes CAP_SYS_ADMIN; run "
				 "relive as root, or restart the process",
				 pf->name, objname(o->name), pid, path);
			return -EPERM;
		}
		if (rc)
			continue;
		f = filecache_symbols(path, err, errlen);
		if (!f)
			return -ENOEXEC;
		if (o->build_id && o->build_id[0] &&
		    strcasecmp(o->build_id, elfsym_build_id(f))) {
			snprintf(err, errlen,
				 "%s: object '%s' (%s) has build-id %s, the "
				 "patch was built for %s; rebuild the patch "
				 "against the running binary", pf->name,
				 objname(o->name), path,
				 elfsym_build_id(f)[0] ? elfsym_build_id(f) :
							 "(none)",
				 o->build_id);
			return -ENOEXEC;
		}
		for (j = 0; j < o->nfuncs; j++) {
			struct elfsym_sym sym;
			unsigned count = 0;
			char msg[512];

			background_step();

			rc = elfsym_lookup(f, o->funcs[j].old_name,
					   o->funcs[j].old_sympos, &sym, &count);
			if (rc) {
				elfsym_strerror(rc, o->funcs[j].old_name,
						o->funcs[j].old_sympos, count,
						objname(o->name), msg,
						sizeof(msg));
				snprintf(err, errlen, "%s: %s", pf->name, msg);
				return rc;
			}
			if (sym.type != STT_FUNC) {
				snprintf(err, errlen, "%s: symbol '%s' in %s is "
					 "not a function", pf->name,
					 o->funcs[j].old_name, objname(o->name));
				return -EINVAL;
			}
			resolution_func(res, pf, i, j, f, &sym);
			sites_prepare(res, pf, i, j, pid, bias + sym.value,
				      sym.size);
		}
		rc = resolution_refs(res, pf, i, f, err, errlen);
		if (rc)
			return rc;
		calls_find(res, pf, i, f, path);
		resolution_object(res, i, f);
	}
	return resolution_other_refs(res, pf, pid, err, errlen);
}

/* Takes away what a failed `relive patch` left: the patch and any entry
 * jump no version uses. */
static void undo_load(struct agent *a, const char *name)
{
	char msg[512];

	agent_request(a, RELIVE_OP_ABORT, name, msg, sizeof(msg));
	if (!agent_request(a, RELIVE_OP_UNUSED_SITES, NULL, msg, sizeof(msg)))
		codewrite_apply(a, msg, sizeof(msg));
}

/* Finishes a command that started or reversed a transition: drives it,
 * then takes away unused entry jumps.  Returns an exit status. */
static int finish(struct agent *a, const char *what, const char *name,
		  pid_t pid, double timeout, char *err, size_t errlen)
{
	int rc = transition_drive(a, timeout, err, errlen);

	if (rc == 1)
		return EXIT_TIMEOUT;
	if (!rc)
		rc = transition_cleanup(a, err, errlen);
	if (rc)
		return EXIT_REFUSED;
	if (what)
		printf("relive: patch '%s' %s in process %d\n", name, what,
		       pid);
	return EXIT_DONE;
}

/* finish() for a single command: says why on failure. */
static int finish_cmd(struct agent *a, const char *what, const char *name,
		      pid_t pid, double timeout)
{
	char err[4096];
	int rc = finish(a, what, name, pid, timeout, err, sizeof(err));

	if (rc != EXIT_DONE)
		die_msg("%s", err);
	return rc;
}

/* Not an exit status: patch_one() found the patch applied already. */
#define EXIT_ALREADY 10

/* patch_one() with the process's lock held. */
static int patch_locked(pid_t pid, const char *real, struct patchfile *pf,
			long threads, double timeout, char *err, size_t errlen)
{
	struct agent a;
	int rc;

	rc = agent_find(pid, &a, err, errlen);
	if (rc)
		return EXIT_REFUSED;
	a.threads = threads > 0 && threads < UINT32_MAX ? (uint32_t)threads : 0;
	if (a.loaded && a.c.trans_active && !a.c.trans_target &&
	    !strcmp(a.c.trans_patch, pf->name)) {
		/* Being disabled: enabling it again reverses (kernel). */
		if (agent_request(&a, RELIVE_OP_ENABLE, pf->name, err, errlen))
			return EXIT_REFUSED;
		return finish(&a, NULL, pf->name, pid, timeout, err, errlen);
	}
	vlog("checking the patch against process %d", pid);
	if (precheck(pid, pf, &patch_res, err, errlen))
		return EXIT_REFUSED;
	if (!a.loaded) {
		vlog("loading the agent into process %d", pid);
		if (agent_inject(pid, &a, err, errlen))
			return EXIT_REFUSED;
		/* counted before the agent's own thread started */
		a.threads = threads > 0 && threads < UINT32_MAX - 1 ?
				    (uint32_t)threads + 1 : 0;
	}
	vlog("loading %s", real);
	for (size_t i = 0; i < pf->nobjs; i++)
		if (!pf->objs[i].name)
			a.load_near_main = 1;
	/* LOAD_ENABLE: when every entry write could be made by the agent
	 * alone, the enable comes in the same request. */
	a.c.load_enabled = 0; /* what a request that was not served says */
	a.res = &patch_res;
	rc = agent_request(&a, RELIVE_OP_LOAD_ENABLE, real, err, errlen);
	a.res = NULL;
	a.load_near_main = 0;
	if (rc && a.c.load_enabled == 2) {
		/* Loaded, then the enable was refused: err says why. */
		undo_load(&a, pf->name);
		return EXIT_REFUSED;
	}
	if (rc)
		return rc == -EEXIST ? EXIT_ALREADY : EXIT_REFUSED;
	if (a.c.load_enabled) {
		vlog("enabled in the same request");
		return finish(&a, NULL, pf->name, pid, timeout, err, errlen);
	}
	rc = codewrite_apply(&a, err, errlen);
	if (!rc)
		rc = agent_request(&a, RELIVE_OP_ENABLE, pf->name, err, errlen);
	if (rc) {
		undo_load(&a, pf->name);
		return EXIT_REFUSED;
	}
	return finish(&a, NULL, pf->name, pid, timeout, err, errlen);
}

/* Applies the patch file (already read into pf) to one process, holding
 * its lock (lock.c).  Returns an exit status (or EXIT_ALREADY); err says
 * why when it is not EXIT_DONE. */
static int patch_one(pid_t pid, const char *real, struct patchfile *pf,
		     double timeout, char *err, size_t errlen)
{
	long threads;
	int rc;

	/* The lock first: a process another relive command works on is
	 * traced by it at times, which proc_check() would take for a
	 * debugger. */
	if (target_lock(pid, err, errlen) ||
	    proc_check(pid, &threads, err, errlen)) {
		target_unlock();
		return EXIT_REFUSED;
	}
	/* A map read before the lock (--all's look at the process) may
	 * predate another command's last step. */
	proc_maps_forget();
	rc = patch_locked(pid, real, pf, threads, timeout, err, errlen);
	target_unlock();
	return rc;
}

/* Does process pid map one of the patch's objects?  By build-id when the
 * patch pins one, by name otherwise; the executable only by build-id. */
enum want { WANT_NO, WANT_YES, WANT_OTHER_BUILD };

static enum want wants(pid_t pid, const struct patchfile *pf)
{
	enum want w = WANT_NO;
	size_t i;

	for (i = 0; i < pf->nobjs; i++) {
		const struct pf_object *o = &pf->objs[i];
		const struct elfsym_file *f;
		char path[4096], e[256];
		uint64_t bias;
		bool match;

		if (!o->name && !o->build_id)
			continue;
		if (proc_find_object(pid, o->name, path, sizeof(path), &bias))
			continue;
		if (!o->build_id)
			return WANT_YES;
		f = filecache_header(path, e, sizeof(e));
		if (!f)
			continue;
		match = !strcasecmp(elfsym_build_id(f), o->build_id);
		if (match)
			return WANT_YES;
		if (o->name)
			w = WANT_OTHER_BUILD; /* same library, another build */
	}
	return w;
}

/* Has pid exited (or is it exiting: a zombie, or dead)? */
static bool exited(pid_t pid)
{
	char path[64], buf[512], *p;
	FILE *f;
	bool gone = true;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "re");
	if (!f)
		return true;
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) &&
	    p[1] == ' ')
		gone = p[2] == 'Z' || p[2] == 'X';
	fclose(f);
	return gone;
}

/* Can --all tell which processes the patch is for? */
static bool matchable(const struct patchfile *pf)
{
	size_t i;

	for (i = 0; i < pf->nobjs; i++)
		if (pf->objs[i].name || pf->objs[i].build_id)
			return true;
	return false;
}

/* Prints the line of one process of --all, whose patch_one() or
 * patch_locked() returned rc (err saying why); returns its exit code. */
static int report_one(pid_t pid, int rc, char *err, size_t errlen)
{
	if (rc != EXIT_DONE && rc != EXIT_ALREADY && exited(pid)) {
		snprintf(err, errlen, "the process exited");
		rc = EXIT_ALREADY;
	}
	if (rc == EXIT_DONE)
		printf("%d: patched\n", pid);
	else if (rc == EXIT_ALREADY)
		printf("%d: skipped: %s\n", pid, err);
	else
		printf("%d: %s: %s\n", pid,
		       rc == EXIT_TIMEOUT ? "in transition" : "failed", err);
	fflush(stdout);
	return rc;
}

/* What the workers of --all share: the next process to take, the counts. */
struct fleet {
	size_t next;
	int patched, skipped, failed;
};

/* Counts one process's outcome, from any worker. */
static void fleet_count(struct fleet *fl, int rc)
{
	__atomic_fetch_add(rc == EXIT_DONE ? &fl->patched :
			   rc == EXIT_ALREADY ? &fl->skipped : &fl->failed,
			   1, __ATOMIC_RELAXED);
}

/* A process of --all that maps another build of the patch's objects. */
static void skip_other_build(struct fleet *fl, pid_t pid)
{
	printf("%d: skipped: maps another build of the patch's objects "
	       "(build-id differs)\n", pid);
	fflush(stdout);
	fleet_count(fl, EXIT_ALREADY);
}

/*
 * Looks at one process of the machine for --all: patches it if it maps one
 * of the patch's objects, says it is skipped if it maps another build,
 * and says nothing otherwise.
 *
 * The process's lock is taken before the look, so the map read to tell
 * whether the process is a target is also the one the patch goes on with
 * (patch_one() must read it again after taking the lock: a read made
 * before may predate another command's last step).  One read of the map
 * fewer per target, at the price of a lock held for the length of a look
 * on the others.  A process locked by another command is looked at
 * without the lock, to tell whether it is a target, and reported failed
 * if it is.
 */
static void patch_all_consider(struct fleet *fl, pid_t pid, const char *real,
			       struct patchfile *pf, double timeout)
{
	char err[4096];
	long threads;
	enum want w;
	int rc;

	filecache_epoch(); /* files are checked again for each process */
	if (target_lock(pid, err, sizeof(err))) {
		target_unlock();
		w = wants(pid, pf);
		if (w == WANT_YES)
			fleet_count(fl, report_one(pid, EXIT_REFUSED, err,
						   sizeof(err)));
		else if (w == WANT_OTHER_BUILD)
			skip_other_build(fl, pid);
		return;
	}
	proc_maps_forget();
	w = wants(pid, pf);
	if (w != WANT_YES) {
		target_unlock();
		if (w == WANT_OTHER_BUILD)
			skip_other_build(fl, pid);
		return;
	}
	rc = proc_check(pid, &threads, err, sizeof(err)) ? EXIT_REFUSED :
		patch_locked(pid, real, pf, threads, timeout, err,
			     sizeof(err));
	target_unlock();
	fleet_count(fl, report_one(pid, rc, err, sizeof(err)));
}

/*
 * `relive patch --all`: every process of the machine that maps one of the
 * patch's objects, one line per process and a summary.  The process IDs
 * are listed first; the first target found is looked at here, so what is
 * read for it (libc's symbols, the agent's) is inherited by the workers;
 * then a few workers (two per CPU), forked once, take the other IDs one
 * after the other from a shared counter, each telling whether the process
 * is a target (reading its map: 1000 of them took 0.1 s when this was done
 * here, before the workers started) and patching it if so.  A worker that
 * dies loses only its current process, which the parent reports as
 * failed.
 */
static int patch_all(const char *real, struct patchfile *pf, double timeout)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int width = ncpu > 0 ? 2 * ncpu : 2, running = 0, w, lost = 0;
	struct dirent *de;
	DIR *d = opendir("/proc");
	pid_t self = getpid();
	pid_t *pids = NULL;
	size_t npids = 0, cap = 0, first;
	struct fleet *fl;

	if (!matchable(pf)) {
		if (d)
			closedir(d);
		die_msg("patch '%s' is for the main executable only and pins "
			"no build-id, so --all cannot tell which processes it "
			"is for; give -p PID, or pin the executable's build-id "
			"in the patch (klp_object.build_id)", pf->name);
		return EXIT_REFUSED;
	}
	if (!d) {
		die_msg("cannot read /proc: %s", strerror(errno));
		return EXIT_REFUSED;
	}
	while ((de = readdir(d))) {
		char *end;
		long v = strtol(de->d_name, &end, 10);

		if (*end || v <= 0 || v == self)
			continue;
		if (npids == cap) {
			pid_t *np = realloc(pids, (cap ? 2 * cap : 256) *
						  sizeof(*pids));

			if (!np) {
				closedir(d);
				free(pids);
				die_msg("out of memory");
				return EXIT_REFUSED;
			}
			pids = np;
			cap = cap ? 2 * cap : 256;
		}
		pids[npids++] = (pid_t)v;
	}
	closedir(d);
	fl = mmap(NULL, sizeof(*fl), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (fl == MAP_FAILED) {
		free(pids);
		die_msg("cannot share memory with the workers: %s",
			strerror(errno));
		return EXIT_REFUSED;
	}
	memset(fl, 0, sizeof(*fl));
	/* Up to the first target, here; the workers inherit what its
	 * lookup read: most processes share one libc. */
	for (first = 0; first < npids; first++) {
		enum want wt;

		filecache_epoch();
		wt = wants(pids[first], pf);
		if (wt == WANT_YES) {
			agent_warm(pids[first]);
			break;
		}
		if (wt == WANT_OTHER_BUILD)
			skip_other_build(fl, pids[first]);
	}
	fl->next = first;
	if ((size_t)width > npids - first)
		width = (int)(npids - first);
	fflush(stdout);
	for (w = 0; w < width; w++) {
		pid_t child = fork();

		if (child == 0) {
			for (;;) {
				size_t i = __atomic_fetch_add(&fl->next, 1,
							      __ATOMIC_RELAXED);

				if (i >= npids)
					break;
				patch_all_consider(fl, pids[i], real, pf,
						   timeout);
			}
			_exit(0);
		}
		if (child < 0) {
			printf("relive: cannot start a worker: %s\n",
			       strerror(errno));
			break;
		}
		running++;
	}
	if (!running) {
		/* No worker at all: do them here, one by one. */
		for (size_t i = fl->next; i < npids; i++)
			patch_all_consider(fl, pids[i], real, pf, timeout);
		fl->next = npids;
	}
	while (running) {
		int status;

		if (wait(&status) < 0)
			break;
		running--;
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			lost++; /* its current process goes unreported */
	}
	if (lost)
		printf("relive: %d worker(s) died; the process each was "
		       "working on is not reported (counted as failed)\n",
		       lost);
	fl->failed += lost;
	printf("relive: patch '%s': %d patched, %d skipped, %d failed\n",
	       pf->name, fl->patched, fl->skipped, fl->failed);
	w = fl->failed ? EXIT_REFUSED : EXIT_DONE;
	munmap(fl, sizeof(*fl));
	free(pids);
	return w;
}

static int cmd_patch(int argc, char **argv)
{
	struct patchfile pf;
	struct opts o;
	char err[4096], real[PATH_MAX];
	int rc;

	rc = parse("patch", argc, argv, &o, true, true, false);
	if (rc || o.help)
		return o.help ? command_usage("patch") : rc;
	if (!o.all && proc_access(o.pid, err, sizeof(err)))
		goto refused;
	if (!realpath(o.arg, real)) {
		snprintf(err, sizeof(err), "%s: %s", o.arg, strerror(errno));
		goto refused;
	}
	if (patchfile_read(real, &pf, err, sizeof(err)))
		goto refused;
	resolution_start(&patch_res, &pf);
	{
		const struct elfsym_file *f =
			filecache_symbols(real, err, sizeof(err));

		if (f)
			resolution_patch(&patch_res, &pf, f);
	}
	if (o.all) {
		rc = patch_all(real, &pf, o.timeout);
		patchfile_free(&pf);
		return rc;
	}
	rc = patch_one(o.pid, real, &pf, o.timeout, err, sizeof(err));
	if (rc == EXIT_ALREADY)
		rc = EXIT_REFUSED;
	if (rc == EXIT_DONE)
		printf("relive: patch '%s' enabled in process %d\n", pf.name,
		       o.pid);
	else
		die_msg("%s", err);
	patchfile_free(&pf);
	return rc;
refused:
	die_msg("%s", err);
	return EXIT_REFUSED;
}

/* Finds the agent of a process for a command that changes it, and takes
 * the process's lock (held until relive exits). */
static int need_agent(pid_t pid, struct agent *a, char *err, size_t errlen)
{
	int rc = target_lock(pid, err, errlen); /* first: see patch_one() */

	long threads;

	if (!rc)
		rc = proc_check(pid, &threads, err, errlen);
	if (rc)
		return rc;
	rc = agent_find(pid, a, err, errlen);
	a->threads = threads > 0 && threads < UINT32_MAX ? (uint32_t)threads :
							   0;
	if (!rc && !a->loaded) {
		snprintf(err, errlen, "process %d has no relive agent and no "
			 "patches", pid);
		rc = -ENOENT;
	}
	return rc;
}

static int cmd_disable(int argc, char **argv)
{
	struct opts o;
	struct agent a;
	char err[4096];
	int rc;

	rc = parse("disable", argc, argv, &o, true, true, false);
	if (rc || o.help)
		return o.help ? command_usage("disable") : rc;
	if (need_agent(o.pid, &a, err, sizeof(err)) ||
	    agent_request(&a, RELIVE_OP_DISABLE, o.arg, err, sizeof(err))) {
		die_msg("%s", err);
		return EXIT_REFUSED;
	}
	return finish_cmd(&a, "disabled", o.arg, o.pid, o.timeout);
}

static int cmd_wait(int argc, char **argv)
{
	struct opts o;
	struct agent a;
	char err[4096];
	int rc;

	rc = parse("wait", argc, argv, &o, false, true, false);
	if (rc || o.help)
		return o.help ? command_usage("wait") : rc;
	if (need_agent(o.pid, &a, err, sizeof(err))) {
		die_msg("%s", err);
		return EXIT_REFUSED;
	}
	if (!a.c.trans_active) {
		/* Nothing to drive; still take away unused entry jumps a
		 * killed controller may have left. */
		if (transition_cleanup(&a, err, sizeof(err))) {
			die_msg("%s", err);
			return EXIT_REFUSED;
		}
		printf("relive: no transition in progress in process %d\n",
		       o.pid);
		return EXIT_DONE;
	}
	return finish_cmd(&a, a.c.trans_target ? "enabled" : "disabled",
			  a.c.trans_patch, o.pid, o.timeout);
}

static int cmd_force(int argc, char **argv)
{
	struct opts o;
	struct agent a;
	char err[4096];
	int rc;

	rc = parse("force", argc, argv, &o, true, false, false);
	if (rc || o.help)
		return o.help ? command_usage("force") : rc;
	if (need_agent(o.pid, &a, err, sizeof(err)) ||
	    agent_request(&a, RELIVE_OP_FORCE, o.arg, err, sizeof(err)) ||
	    transition_cleanup(&a, err, sizeof(err))) {
		die_msg("%s", err);
		return EXIT_REFUSED;
	}
	printf("relive: transition of '%s' forced to completion in process "
	       "%d; the patch can no longer be removed\n", o.arg, o.pid);
	return EXIT_DONE;
}

static int cmd_remove(int argc, char **argv)
{
	struct opts o;
	struct agent a;
	char err[4096];
	int rc;

	rc = parse("remove", argc, argv, &o, true, false, false);
	if (rc || o.help)
		return o.help ? command_usage("remove") : rc;
	if (need_agent(o.pid, &a, err, sizeof(err)) ||
	    agent_request(&a, RELIVE_OP_REMOVE, o.arg, err, sizeof(err))) {
		die_msg("%s", err);
		return EXIT_REFUSED;
	}
	printf("relive: patch '%s' removed from process %d\n", o.arg, o.pid);
	return EXIT_DONE;
}

static int cmd_list(int argc, char **argv)
{
	struct opts o;
	int rc;

	rc = parse("list", argc, argv, &o, false, false, true);
	if (rc || o.help)
		return o.help ? command_usage("list") : rc;
	return list_print(o.pid, o.json);
}

static int cmd_run(int argc, char **argv)
{
	const char *agent = agent_default_path();
	const char *old = getenv("LD_PRELOAD");
	char real[PATH_MAX], shim[PATH_MAX + 32], *pre, *slash;
	int i = 1;

	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")))
		return command_usage("run");
	if (i < argc && !strcmp(argv[i], "--"))
		i++;
	if (i >= argc)
		return usage_error("run: which command? relive run -- CMD [ARGS...]");
	if (!realpath(agent, real)) {
		die_msg("agent %s: %s", agent, strerror(errno));
		return EXIT_REFUSED;
	}
	/* The shim next to the agent loads it privately (agent/preload.c). */
	snprintf(shim, sizeof(shim), "%s", real);
	slash = strrchr(shim, '/');
	snprintf(slash + 1, sizeof(shim) - (slash + 1 - shim),
		 "librelive-preload.so");
	if (access(shim, R_OK)) {
		die_msg("%s: %s", shim, strerror(errno));
		return EXIT_REFUSED;
	}
	if (asprintf(&pre, "%s%s%s", shim, old && *old ? ":" : "",
		     old ? old : "") < 0)
		return EXIT_REFUSED;
	setenv("RELIVE_PRELOAD_AGENT", real, 1);
	setenv("RELIVE_PRELOAD_ORIG", old ? old : "", 1);
	setenv("LD_PRELOAD", pre, 1);
	execvp(argv[i], argv + i);
	die_msg("cannot run %s: %s", argv[i], strerror(errno));
	return 127;
}

/* Called by the relive executable (relive/launch.c) once it has loaded
 * this library: the controller's main(). */
__attribute__((visibility("default"))) int relive_main(int argc, char **argv)
{
	const char *cmd;

	/* Never wait on the network while a thread of the target is held. */
	unsetenv("DEBUGINFOD_URLS");
	/* Short waits for the target (a request, a back-off) are short. */
	prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
	if (getenv("RELIVE_DEBUG_ROOT") && *getenv("RELIVE_DEBUG_ROOT"))
		elfsym_set_debug_root(getenv("RELIVE_DEBUG_ROOT"));
	elfsym_set_mapped(true);
	if (argc < 2)
		return usage_error("which command?");
	cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") ||
	    !strcmp(cmd, "help")) {
		fputs(usage_text, stdout);
		return EXIT_DONE;
	}
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
		printf("relive %s\n", RELIVE_VERSION);
		return EXIT_DONE;
	}
	/* relive/launch.c made the thread give way (but for run). */
	if (strcmp(cmd, "run"))
		background_step(); /* starts the thread's clock */
	if (!strcmp(cmd, "patch"))
		return cmd_patch(argc - 1, argv + 1);
	if (!strcmp(cmd, "disable"))
		return cmd_disable(argc - 1, argv + 1);
	if (!strcmp(cmd, "remove"))
		return cmd_remove(argc - 1, argv + 1);
	if (!strcmp(cmd, "list"))
		return cmd_list(argc - 1, argv + 1);
	if (!strcmp(cmd, "wait"))
		return cmd_wait(argc - 1, argv + 1);
	if (!strcmp(cmd, "force"))
		return cmd_force(argc - 1, argv + 1);
	if (!strcmp(cmd, "run"))
		return cmd_run(argc - 1, argv + 1);
	return usage_error("unknown command '%s'", cmd);
}
