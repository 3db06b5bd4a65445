/*
 * tests/targets/obj_host_aux.c - the second static dup_var of obj_host
 * (222; obj_host.c has 111): a KLP_SYMBOL reference to dup_var needs a
 * sympos.
 */
static volatile int dup_var = 222;

int aux_dup_var(void);

int aux_dup_var(void)
{
	return dup_var;
}
