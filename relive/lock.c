/*
 * relive/lock.c - one relive command per process at a time (kernel:
 * klp_mutex).
 *
 * Two controllers working on one process at once would overwrite each
 * other's requests to the agent and drive one transition twice.  A command
 * that changes a process first takes that process's lock: an abstract
 * UNIX socket named after the process's ID and start time, bound and
 * listening for as long as the command works on it.  The kernel frees the
 * name when the socket is closed, including when relive is killed, so a
 * lock never outlives its holder.  A second command finds the name taken,
 * connects to learn the holder's PID (SO_PEERCRED), and is refused before
 * it reads or changes anything.
 *
 * The name lives in the network namespace of the command: two relive
 * commands in different network namespaces do not see each other's locks.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "relive.h"

static int lock_fd = -1;

static socklen_t lock_name(pid_t pid, struct sockaddr_un *sa)
{
	int n;

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	/* sun_path[0] == '\0': the abstract namespace, no file */
	n = snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1,
		     "relive/%d/%llu", pid, proc_start_time(pid));
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

/* The PID of the relive command holding the lock named sa, or 0. */
static pid_t holder(const struct sockaddr_un *sa, socklen_t len)
{
	struct ucred cred = { 0 };
	socklen_t clen = sizeof(cred);
	pid_t who = 0;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return 0;
	if (!connect(fd, (const struct sockaddr *)sa, len) &&
	    !getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen))
		who = cred.pid;
	close(fd);
	return who;
}

int target_lock(pid_t pid, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	socklen_t len = lock_name(pid, &sa);
	pid_t who;
	int fd;

	target_unlock();
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "cannot create a socket to lock process "
			 "%d: %s", pid, strerror(errno));
		return -errno;
	}
	if (!bind(fd, (struct sockaddr *)&sa, len) && !listen(fd, 8)) {
		lock_fd = fd;
		return 0;
	}
	close(fd);
	if (errno != EADDRINUSE) {
		snprintf(err, errlen, "cannot lock process %d: %s", pid,
			 strerror(errno));
		return -EIO;
	}
	who = holder(&sa, len);
	if (who)
		snprintf(err, errlen, "another relive command (PID %d) is "
			 "working on process %d; nothing was changed: run this "
			 "one again when it has finished", (int)who, pid);
	else
		snprintf(err, errlen, "another relive command is working on "
			 "process %d; nothing was changed: run this one again "
			 "when it has finished", pid);
	return -EBUSY;
}

void target_unlock(void)
{
	if (lock_fd >= 0)
		close(lock_fd);
	lock_fd = -1;
}
