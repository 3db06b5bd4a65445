/*
 * Patches of obj_host that relive must refuse, or, for a library loaded
 * later, leave that library unpatched (test_objects.py); one of:
 *   MISSING_MAIN  a KLP_SYMBOL reference to no_such_var in the executable
 *   MISSING_LIB   a KLP_SYMBOL reference to no_such_counter in libobjplug.so
 *   BAD_BUILDID   libobjplug.so pinned to a build-id it does not have
 * The replaced functions: compute (main) or plug_value (libobjplug.so),
 * new version x + 77.
 */
#include <relive/livepatch.h>

#if defined(MISSING_MAIN)
extern volatile int no_such_var KLP_SYMBOL("main", no_such_var, 0);
#define OBJ NULL
#define FUNC "compute"
#define READ no_such_var
#elif defined(MISSING_LIB)
extern volatile int no_such_counter KLP_SYMBOL("libobjplug.so",
					       no_such_counter, 0);
#define OBJ "libobjplug.so"
#define FUNC "plug_value"
#define READ no_such_counter
#else
#define OBJ "libobjplug.so"
#define FUNC "plug_value"
#define READ 0
#define BUILD_ID "0123456789abcdef0123456789abcdef01234567"
#endif

static int new_func(int x)
{
	return x + 77 + 0 * READ;
}

static struct klp_func funcs[] = {
	{ .old_name = FUNC, .new_func = new_func },
	{ 0 }
};

static struct klp_object objs[] = {
#ifdef BUILD_ID
	{ .name = OBJ, .funcs = funcs, .build_id = BUILD_ID },
#else
	{ .name = OBJ, .funcs = funcs },
#endif
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
