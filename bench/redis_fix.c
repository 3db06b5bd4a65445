/*
 * bench/redis_fix.c - the live patch of the Redis load benchmark (figure
 * 6): PING answers "+PATCHED" instead of "+PONG", so the load generator
 * sees which version served each request.  It calls Redis's own reply
 * function; the client structure stays opaque.
 */
#include <relive/livepatch.h>

struct client;
void addReplyStatus(struct client *c, const char *status);

static void pingCommand_v2(struct client *c)
{
	addReplyStatus(c, "PATCHED");
}

static struct klp_func funcs[] = {
	{ .old_name = "pingCommand", .new_func = pingCommand_v2 },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
