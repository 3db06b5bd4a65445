/*
 * bench/fleetlib.c - the library every process of the many-processes
 * benchmark maps (libfleet.so); fleet_fix.so patches fleet_value() in it,
 * and `relive patch --all` finds the processes by this library's name.
 */
__attribute__((noipa)) long fleet_value(long x)
{
	return x + 1;
}
