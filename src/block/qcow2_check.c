/* qcow2 consistency check and repair (qemu-img check): rebuilds every cluster's refcount
 * from the header, tables, L1/L2 entries and snapshots, compares with the stored ones. */
#include "block/qcow2_int.h"
#include "util/err.h"

int qcow2_check(struct blk *b, unsigned fix, struct qcow2_check_result *res)
{
	return kite_error("%s: check not implemented yet", b->filename);
}
