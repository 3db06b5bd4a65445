/*
 * agent/agent.c - the agent's front door: the control block the controller
 * reads and writes, and the one entry point it makes a thread call.
 *
 * The controller (relive/) writes a request into relive_agent_ctl and has
 * relive_agent_request() called: by the agent's own thread (service.c),
 * or, when there is none yet, by a thread of the target it borrows.
 * The other threads keep running meanwhile: nothing here may assume the
 * process is stopped.  The reply (status and message) goes back into the
 * control block; the listing is kept up to date there too (core_snapshot),
 * so `relive list` needs no request at all.
 *
 * The agent never writes to the target's stdout or stderr unless
 * RELIVE_AGENT_LOG is set in the target's environment: a live patcher must
 * not change what the program prints.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "background.h"

pthread_mutex_t agent_lock = PTHREAD_MUTEX_INITIALIZER;

AGENT_EXPORT struct relive_ctl relive_agent_ctl = {
	.magic = RELIVE_CTL_MAGIC,
	.abi = RELIVE_CTL_ABI,
	.version = RELIVE_VERSION,
	.pending = "[]",
	.svc_fd = -1,
};

/* Initialised to a non-zero value so that it lives in .tdata, the TLS
 * image new threads are copied from (transition.c updates the image).
 * Initial-exec: the dispatcher reads it with one %fs-relative load. */
__thread uint32_t relive_thread_state = RELIVE_STATE_INIT;

static bool agent_logging;

/*
 * Where a thread borrowed by the controller returns after a request: the
 * controller left a signal frame with the thread's own registers on its
 * stack, and rt_sigreturn restores them (see relive/ptrace.c).  Exactly
 * `mov $15,%rax; syscall`, 9 bytes, as the controller expects.
 */
__asm__(".text\n"
	".globl relive_agent_restorer\n"
	".type relive_agent_restorer, @function\n"
	"relive_agent_restorer:\n"
	"	mov $15, %rax\n"
	"	syscall\n"
	"	hlt\n"
	".size relive_agent_restorer, .-relive_agent_restorer\n");

void agent_msg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(relive_agent_ctl.msg, sizeof(relive_agent_ctl.msg), fmt, ap);
	va_end(ap);
	agent_log("%s", relive_agent_ctl.msg);
}

void agent_log(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	if (!agent_logging)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(STDERR_FILENO, "relive-agent: ", 14) < 0 ||
	    write(STDERR_FILENO, buf, n) < 0)
		agent_logging = false;
}

static int64_t thread_pointer_offset(void)
{
	return (int64_t)((uintptr_t)&relive_thread_state -
			 relive_arch_thread_pointer());
}

__attribute__((constructor)) static void agent_init(void)
{
	agent_logging = getenv("RELIVE_AGENT_LOG") != NULL;
	relive_agent_ctl.tls_offset = thread_pointer_offset();
	transition_init();
	sleepers_init();
	objects_init();
	resolution_init();
	core_snapshot();
	warm_choose();
	service_start();
	agent_log("agent %s loaded", RELIVE_VERSION);
}

/* LOAD_ENABLE's second half: the patch p was loaded and no entry write is
 * left for the controller, so nothing stands between the load and the
 * enable but a request; enable it now.  Returns the enable's status; on
 * a refusal p stays loaded, for the controller to abort. */
static int load_enable(struct relive_patch *p)
{
	int rc = core_enable(p->name);

	relive_agent_ctl.load_enabled = rc ? 2 : 1;
	return rc;
}

/* The request being served completed the transition: plan the removal of
 * the entry jumps no version uses now (spares the controller an
 * UNUSED_SITES request; if this fails, plan_after stays 0 and the
 * controller asks), and say so in completed_seq. */
static void completed_here(void)
{
	(void)ops_plan_after_transition();
	relive_agent_ctl.completed_seq = relive_agent_ctl.req_seq;
}

/*
 * Serves the request in relive_agent_ctl.op.  Returns the status, also left
 * in relive_agent_ctl.status.
 */
AGENT_EXPORT long relive_agent_request(void)
{
	struct relive_ctl *c = &relive_agent_ctl;
	struct relive_patch *opened = NULL, *gone = NULL;
	char arg[sizeof(c->arg)];
	int rc = 0;

	if (!c->svc_tid)
		service_start(); /* a fork child, or a closed pipe */
	/* Give way between steps only where a thread of the program could
	 * be waiting for this CPU (common/background.c), by the count of
	 * threads relive made just before, else by our own. */
	background_set_roomy(c->threads ? background_roomy_threads(c->threads)
					: background_roomy());
	/* The path, not the 4 KiB around it: a request's time goes to the
	 * memory it touches (text.c). */
	text_copy(arg, sizeof(arg), c->arg);
	c->msg[0] = '\0';
	c->written_alone = 0;
	c->load_enabled = 0;
	c->server_tid = (uint32_t)gettid();
	/* Lock order: the dynamic loader's lock, then agent_lock (the loader
	 * calls objects.c's hook with its lock held).  So whatever calls into
	 * the loader (dlopen, dlsym, dlclose) runs outside agent_lock. */
	if (c->op == RELIVE_OP_LOAD || c->op == RELIVE_OP_LOAD_ENABLE)
		opened = core_open(arg, c->req_seq, &rc);
	pthread_mutex_lock(&agent_lock);
	c->busy = 1;
	codemem_begin();
	switch (c->op) {
	case RELIVE_OP_LOAD:
	case RELIVE_OP_LOAD_ENABLE:
		if (opened) {
			rc = core_load(opened);
			if (rc)
				gone = opened;
			else if (c->op == RELIVE_OP_LOAD_ENABLE && !c->nplan)
				rc = load_enable(opened);
		}
		break;
	case RELIVE_OP_WRITTEN:
		ops_plan_done();
		rc = 0;
		break;
	case RELIVE_OP_ENABLE:
		rc = core_enable(arg);
		break;
	case RELIVE_OP_DISABLE:
		rc = core_disable(arg);
		break;
	case RELIVE_OP_REMOVE:
		rc = core_remove(arg, &gone);
		break;
	case RELIVE_OP_ABORT:
		rc = core_abort(arg, &gone);
		break;
	case RELIVE_OP_UNUSED_SITES:
		rc = ops_plan_restores();
		if (!rc)
			ops_plan_write_alone();
		break;
	case RELIVE_OP_COMPLETE:
		rc = core_complete();
		if (!rc)
			completed_here();
		break;
	case RELIVE_OP_FORCE:
		rc = core_force(arg);
		break;
	default:
		agent_msg("unknown request %u", c->op);
		rc = -22;
		break;
	}
	/* A request that started a transition completes it when every
	 * other thread sleeps with nothing of the old world on its stack
	 * (sleepers.c): the controller then holds no thread, and sends no
	 * COMPLETE. */
	if (!rc && (c->op == RELIVE_OP_ENABLE || c->op == RELIVE_OP_DISABLE ||
		    (c->op == RELIVE_OP_LOAD_ENABLE && c->load_enabled == 1)) &&
	    transition_patch() && sleepers_switch()) {
		transition_complete(false);
		completed_here();
	}
	c->op = RELIVE_OP_NONE;
	c->status = rc;
	core_snapshot();
	codemem_end();
	c->busy = 0;
	pthread_mutex_unlock(&agent_lock);
	core_discard(gone);
	background_set_roomy(false);
	__atomic_store_n(&c->done_seq, c->req_seq, __ATOMIC_RELEASE);
	service_done(c->req_seq);
	return rc;
}
