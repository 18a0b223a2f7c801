/*
 * switch.S: the context switch between processes and their scheduler.
 * Saves only the callee-saved registers (and the floating-point control
 * words on x86-64) on the current stack, so a switch is a few dozen
 * instructions and never a system call.
 */
#if defined(__x86_64__)
    .text
    .globl rt__switch
    .type rt__switch, @function
rt__switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq (%rsi), %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size rt__switch, .-rt__switch

    .globl rt__trampoline
    .type rt__trampoline, @function
rt__trampoline:
    andq $-16, %rsp
    call rt__proc_main
    ud2
    .size rt__trampoline, .-rt__trampoline

#elif defined(__aarch64__)
    .text
    .globl rt__switch
    .type rt__switch, %function
rt__switch:
    sub sp, sp, #160
    stp x19, x20, [sp, #0]
    stp x21, x22, [sp, #16]
    stp x23, x24, [sp, #32]
    stp x25, x26, [sp, #48]
    stp x27, x28, [sp, #64]
    stp x29, x30, [sp, #80]
    stp d8, d9, [sp, #96]
    stp d10, d11, [sp, #112]
    stp d12, d13, [sp, #128]
    stp d14, d15, [sp, #144]
    mov x9, sp
    str x9, [x0]
    ldr x9, [x1]
    mov sp, x9
    ldp x19, x20, [sp, #0]
    ldp x21, x22, [sp, #16]
    ldp x23, x24, [sp, #32]
    ldp x25, x26, [sp, #48]
    ldp x27, x28, [sp, #64]
    ldp x29, x30, [sp, #80]
    ldp d8, d9, [sp, #96]
    ldp d10, d11, [sp, #112]
    ldp d12, d13, [sp, #128]
    ldp d14, d15, [sp, #144]
    add sp, sp, #160
    ret
    .size rt__switch, .-rt__switch

    .globl rt__trampoline
    .type rt__trampoline, %function
rt__trampoline:
    bl rt__proc_main
    brk #0
    .size rt__trampoline, .-rt__trampoline
#else
#error "rt__switch: unsupported architecture (x86-64 and aarch64 only)"
#endif

    .section .note.GNU-stack, "", %progbits
