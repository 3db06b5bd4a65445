/*
 * tests/patches/cm_cblog.h - callbacks for the consistency-model patches
 * (cm_*.c) that append one line per call to the file named by the
 * environment variable RELIVE_TEST_CBLOG of the target:
 *
 *     "<callback> <object> <patch>"     e.g. "pre_patch main cm_cb"
 *
 * <object> is "main" for the executable.  open(O_APPEND)/write/close, so
 * lines of concurrent writers never interleave.  Define CM_PATCH_NAME (a
 * string) before including; define CM_FAIL_PRE_PATCH_OBJ (an object name,
 * "main" or a library) to make that object's pre_patch fail with -19.
 */
#ifndef CM_CBLOG_H
#define CM_CBLOG_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <relive/livepatch.h>

static void cm_cblog(const char *what, struct klp_object *obj)
{
	const char *path = getenv("RELIVE_TEST_CBLOG");
	char line[256];
	int fd, n;

	if (!path)
		return;
	n = snprintf(line, sizeof(line), "%s %s %s\n", what,
		     obj->name ? obj->name : "main", CM_PATCH_NAME);
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (write(fd, line, (size_t)n) != n) {
		/* nothing to do: the test sees the line missing */
	}
	close(fd);
}

static int cm_pre_patch(struct klp_object *obj)
{
	cm_cblog("pre_patch", obj);
#ifdef CM_FAIL_PRE_PATCH_OBJ
	if (strcmp(obj->name ? obj->name : "main", CM_FAIL_PRE_PATCH_OBJ) == 0)
		return -19; /* -ENODEV, as the kernel selftest's module does */
#endif
	return 0;
}

static void cm_post_patch(struct klp_object *obj)
{
	cm_cblog("post_patch", obj);
}

static void cm_pre_unpatch(struct klp_object *obj)
{
	cm_cblog("pre_unpatch", obj);
}

static void cm_post_unpatch(struct klp_object *obj)
{
	cm_cblog("post_unpatch", obj);
}

#define CM_CALLBACKS                                                           \
	{                                                                      \
		.pre_patch = cm_pre_patch, .post_patch = cm_post_patch,        \
		.pre_unpatch = cm_pre_unpatch, .post_unpatch = cm_post_unpatch \
	}

#endif
