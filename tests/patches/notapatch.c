/*
 * notapatch: an ordinary shared object without RELIVE_PATCH(); relive must
 * refuse it as "not a relive patch" (exit 1) and change nothing.
 */
int notapatch_hello(int x);

int notapatch_hello(int x)
{
	return x + 1;
}
