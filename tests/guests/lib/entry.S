/* PVH entry. QEMU and kite enter at pvh_entry in 32-bit protected mode with paging off and
 * EBX = physical address of struct hvm_start_info. We load our GDT, switch to long mode on
 * static identity page tables (4 GiB in 2 MiB pages, every page user-accessible so run_user()
 * code can touch RAM and MMIO), and call guest_start() on the boot stack.
 *
 * Multiboot entry: the multiboot builds of a program (tests/guests/multiboot/, guests.mk) carry
 * a multiboot header naming multiboot_entry, entered in the same mode with EAX = 0x2BADB002 and
 * EBX = the multiboot information; it records both and joins the PVH path. */

#define SEL_CODE64 0x08
#define SEL_DATA   0x10
#define SEL_CODE32 0x18

	/* XEN_ELFNOTE_PHYS32_ENTRY (18): the 32-bit physical entry address. */
	.section .note.Xen, "a"
	.align 4
	.long 4
	.long 4
	.long 18
	.asciz "Xen"
	.long pvh_entry

	.section .text.entry, "ax"
	.code32
	.globl pvh_entry, multiboot_entry
pvh_entry:
	/* Record the entry state first, for the pvh program to hold against the PVH ABI. */
	movl %ebx, boot_start_info
	jmp boot32

multiboot_entry:
	movl %eax, boot_mb_magic
	movl %ebx, boot_mb_info
	movl $1, boot_via_multiboot

boot32:
	movl $boot_stack_top, %esp
	pushfl
	popl entry_eflags
	cli
	cld
	movl %cr0, %eax
	movl %eax, entry_cr0
	movl %cr4, %eax
	movl %eax, entry_cr4
	movw %cs, entry_cs
	movw %ds, entry_ds
	movw %es, entry_es
	movw %ss, entry_ss
	str entry_tr
	sgdt entry_gdtr
	lgdt gdt_ptr
	ljmp $SEL_CODE32, $1f
1:	movl $SEL_DATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl %eax, %fs
	movl %eax, %gs
	movl $boot_stack_top, %esp

	/* Zero .bss ourselves rather than trust the loader (it is page-aligned, so dwords). */
	movl $__bss_start, %edi
	movl $__bss_end, %ecx
	subl %edi, %ecx
	shrl $2, %ecx
	xorl %eax, %eax
	rep stosl

	movl %cr4, %eax
	orl $0x20, %eax			/* PAE */
	movl %eax, %cr4
	movl $pml4, %eax
	movl %eax, %cr3
	movl $0xc0000080, %ecx		/* EFER.LME */
	rdmsr
	orl $0x100, %eax
	wrmsr
	movl %cr0, %eax
	orl $0x80000001, %eax		/* PG | PE */
	movl %eax, %cr0
	ljmp $SEL_CODE64, $long_mode

	.code64
long_mode:
	movl $SEL_DATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl %eax, %fs
	movl %eax, %gs
	movq $boot_stack_top, %rsp
	xorl %ebp, %ebp
	call guest_start
2:	cli
	hlt
	jmp 2b

	.data
	.globl boot_start_info, boot_mb_magic, boot_mb_info, boot_via_multiboot
	.align 8
boot_start_info:
	.quad 0
boot_mb_magic:
	.long 0
boot_mb_info:
	.long 0
boot_via_multiboot:
	.long 0

	/* struct pvh_entry_state (libguest.h); in .data, since .bss is zeroed after the entry. */
	.globl pvh_entry_state
	.align 8
pvh_entry_state:
entry_cr0:	.long 0
entry_cr4:	.long 0
entry_eflags:	.long 0
entry_cs:	.word 0
entry_ds:	.word 0
entry_es:	.word 0
entry_ss:	.word 0
entry_tr:	.word 0
entry_gdtr:	.word 0		/* limit, then the 32-bit base */
		.long 0

	/* 0x08 kernel code 64, 0x10 kernel data, 0x18 kernel code 32, 0x20 user data,
	 * 0x28 user code 64, 0x30 TSS (16 bytes, filled in by desc.c). */
	.align 16
	.globl gdt, gdt_end, gdt_ptr
gdt:
	.quad 0
	.quad 0x00af9a000000ffff
	.quad 0x00cf92000000ffff
	.quad 0x00cf9a000000ffff
	.quad 0x00cff2000000ffff
	.quad 0x00affa000000ffff
	.quad 0, 0
gdt_end:
	.align 8
	.word 0, 0, 0
gdt_ptr:			/* lgdt reads a 32-bit base in 32-bit mode, 64-bit in long mode */
	.word gdt_end - gdt - 1
	.quad gdt

	/* Identity map of the low 4 GiB; the top 20 MiB (IOAPIC, LAPIC, firmware) uncached. */
	.align 4096
	.globl pml4
pml4:
	.quad pdpt + 0x7
	.fill 511, 8, 0
pdpt:
	.quad pd + 0x7, pd + 0x1007, pd + 0x2007, pd + 0x3007
	.fill 508, 8, 0
pd:
	.set addr, 0
	.rept 2048
	.quad addr | 0x87 | ((addr >= 0xfec00000) & 0x18)
	.set addr, addr + 0x200000
	.endr

	.bss
	.align 4096
	.globl boot_stack_top, intr_stack_top, user_stack_top
boot_stack:
	.skip 16384
boot_stack_top:
intr_stack:
	.skip 16384
intr_stack_top:
user_stack:
	.skip 65536
user_stack_top:

	.section .note.GNU-stack, "", @progbits
