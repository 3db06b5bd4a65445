/*
 * common/libpath.c - where relive's own libraries are.
 *
 * relive's executable loads its controller library (relive/launch.c) and
 * injects its agent (relive/inject.c); both are found the same way: beside
 * the executable, which is how the build directory is laid out, else at the
 * path they are installed to.  Shared so that the two never disagree.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "libpath.h"

const char *libpath_find(const char *file, const char *installed, char *buf,
			 size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	if (n <= 0)
		return installed;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return installed;
	*slash = '\0';
	if ((size_t)snprintf(buf, len, "%s/%s", exe, file) >= len ||
	    access(buf, R_OK))
		return installed;
	return buf;
}
