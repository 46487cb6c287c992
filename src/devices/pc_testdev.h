/* QEMU's pc-testdev (hw/misc/pc-testdev.c), the test device kvm-unit-tests' x86 tests drive,
 * off unless the machine asks for it (--testdev, config/machine_config.h):
 *   0x2000 + n, n < 24  IRQ line n (a GSI): a byte write of nonzero raises it, of 0 lowers it;
 *                       reads give 0; other widths are ignored, as QEMU's valid sizes say;
 *   0xe0-0xe3           a 32-bit latch: an access of any width at 0xe0 + k writes or reads
 *                       its bytes from k (QEMU: data << 8k under a mask, reads latch >> 8k);
 *                       an access not aligned to its width is dropped and reads 0, as
 *                       QEMU's memory core does;
 *   0xe4                flush page: a 32-bit write of ADDR drops the hypervisor's mapping of
 *                       the guest page holding ADDR (QEMU mprotects it away and back), its
 *                       contents kept; reads give 0;
 *   0xe8-0xeb           the same latch, byte by byte (QEMU's "ioport-byte");
 *   0xff000000 + 64 KiB memory behind MMIO exits: reads give what was written, zeros at first
 *                       (any width, aligned or not, as QEMU under TCG).
 * The device knows nothing of KVM: lines and flushes go through the platform callbacks. */
#ifndef KITE_DEVICES_PC_TESTDEV_H
#define KITE_DEVICES_PC_TESTDEV_H

#include <pthread.h>
#include <stdint.h>

#include "devices/platform.h"
#include "util/state.h"
#include "kvm/iobus.h"

#define PC_TESTDEV_LATCH_PORT	   0xe0
#define PC_TESTDEV_LATCH_LEN	   4
#define PC_TESTDEV_FLUSH_PORT	   0xe4
#define PC_TESTDEV_FLUSH_LEN	   4
#define PC_TESTDEV_LATCH_BYTE_PORT 0xe8
#define PC_TESTDEV_IRQ_PORT	   0x2000
#define PC_TESTDEV_IRQ_LINES	   24
#define PC_TESTDEV_IOMEM_BASE	   0xff000000ULL
#define PC_TESTDEV_IOMEM_LEN	   0x10000

struct pc_testdev {
	const struct platform_ops *platform;
	pthread_mutex_t lock; /* vCPUs access it concurrently */
	uint32_t latch;
	uint32_t lines; /* bit n: IRQ line n is raised */
	uint8_t *iomem; /* PC_TESTDEV_IOMEM_LEN bytes */
};

extern const struct io_ops pc_testdev_latch_ops; /* at 0xe0 and 0xe8 */
extern const struct io_ops pc_testdev_flush_ops;
extern const struct io_ops pc_testdev_irq_ops;
extern const struct io_ops pc_testdev_iomem_ops;
/* The latch, the raised lines and the MMIO window's bytes; a load raises the saved lines again
 * (KVM's interrupt controllers come back before the devices, so no edge is seen twice). */
extern const struct state_ops pc_testdev_state_ops;

/* Returns 0 or -1 (reported: out of memory). */
int pc_testdev_init(struct pc_testdev *t, const struct platform_ops *platform);
void pc_testdev_destroy(struct pc_testdev *t);

#endif
