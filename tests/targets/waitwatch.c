/*
 * tests/targets/waitwatch.c - a parent that watches its child the way a
 * job-control shell does, and reports every state change it is told about.
 *
 *     waitwatch CMD [ARGS...]
 *
 * Runs CMD as a child sharing stdin and stdout, and waits for it with
 * waitpid(WUNTRACED | WCONTINUED).  Each stop and continue the parent sees
 * is printed on stderr ("waitwatch: stopped sig=19", "waitwatch:
 * continued"), then "waitwatch: exited status=N" or "waitwatch: killed
 * sig=N".  relive must stay invisible to the parent: after patching the
 * child, stderr holds only the final line.  Exit status: the child's, or
 * 128 + its signal.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	pid_t pid;
	int st;

	if (argc < 2) {
		fprintf(stderr, "usage: waitwatch CMD [ARGS...]\n");
		return 2;
	}
	pid = fork();
	if (pid < 0) {
		perror("waitwatch: fork");
		return 1;
	}
	if (pid == 0) {
		execvp(argv[1], argv + 1);
		fprintf(stderr, "waitwatch: exec %s: %m\n", argv[1]);
		_exit(127);
	}
	for (;;) {
		if (waitpid(pid, &st, WUNTRACED | WCONTINUED) < 0) {
			if (errno == EINTR)
				continue;
			perror("waitwatch: waitpid");
			return 1;
		}
		if (WIFSTOPPED(st)) {
			fprintf(stderr, "waitwatch: stopped sig=%d\n",
				WSTOPSIG(st));
		} else if (WIFCONTINUED(st)) {
			fprintf(stderr, "waitwatch: continued\n");
		} else if (WIFEXITED(st)) {
			fprintf(stderr, "waitwatch: exited status=%d\n",
				WEXITSTATUS(st));
			return WEXITSTATUS(st);
		} else if (WIFSIGNALED(st)) {
			fprintf(stderr, "waitwatch: killed sig=%d\n",
				WTERMSIG(st));
			return 128 + WTERMSIG(st);
		}
	}
}
