/* AP start-up trampoline. smp.c copies [ap_trampoline_start, ap_trampoline_end) to a page
 * below 1 MiB (AP_TRAMPOLINE_BASE) and points the SIPI vector at it. The AP starts in real mode
 * at CS:IP = base>>4:0, loads the main GDT, goes to protected then long mode on the BSP's page
 * tables and jumps to ap_entry64 on the stack the BSP left in ap_boot_stack. Code here runs
 * from the copy, so every address is computed relative to the base. */

#define AP_TRAMPOLINE_BASE 0x8000
#define REL(x) (AP_TRAMPOLINE_BASE + (x) - ap_trampoline_start)

	.section .rodata
	.globl ap_trampoline_start, ap_trampoline_end
	.code16
ap_trampoline_start:
	cli
	cld
	movw %cs, %ax
	movw %ax, %ds
	lgdtl ap_gdt_ptr - ap_trampoline_start
	movl %cr0, %eax
	orl $1, %eax
	movl %eax, %cr0
	ljmpl $0x18, $REL(ap_pm32)

	.code32
ap_pm32:
	movl $0x10, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl %cr4, %eax
	orl $0x20, %eax
	movl %eax, %cr4
	movl $pml4, %eax
	movl %eax, %cr3
	movl $0xc0000080, %ecx
	rdmsr
	orl $0x100, %eax
	wrmsr
	movl %cr0, %eax
	orl $0x80000001, %eax
	movl %eax, %cr0
	ljmp $0x08, $REL(ap_lm64)

	.code64
ap_lm64:
	movabsq $ap_entry64, %rax
	jmp *%rax

	.align 8
ap_gdt_ptr:			/* same limit as gdt_ptr in entry.S: 8 descriptors */
	.word 8 * 8 - 1
	.long gdt
ap_trampoline_end:

	.text
ap_entry64:
	lgdt gdt_ptr
	movl $0x10, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl %eax, %fs
	movl %eax, %gs
	movq ap_boot_stack(%rip), %rsp
	xorl %ebp, %ebp
	call ap_main
1:	cli
	hlt
	jmp 1b

	.section .note.GNU-stack, "", @progbits
