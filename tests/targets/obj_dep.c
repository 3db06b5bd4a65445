/*
 * tests/targets/obj_dep.c - libobjdep.so: linked to libobjplug.so, so
 * dlopen of libobjdep.so loads libobjplug.so as a dependency.
 *
 *     dep_value(x)    plug_value(x)
 */
int plug_value(int x);
int dep_value(int x);

int dep_value(int x)
{
	return plug_value(x);
}
