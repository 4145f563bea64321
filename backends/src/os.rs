//! What the operating system must grant before some instructions run.

/// Ask Linux for the AMX tile state of this process (`arch_prctl(ARCH_REQ_XCOMP_PERM,
/// XFEATURE_XTILEDATA)`), then check it was granted. Without it the first tile instruction
/// kills the process (SIGILL). Asked once, by the feature probe.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub fn request_amx_tiles() -> bool {
    const SYS_ARCH_PRCTL: i64 = 158;
    const ARCH_GET_XCOMP_PERM: u64 = 0x1022;
    const ARCH_REQ_XCOMP_PERM: u64 = 0x1023;
    const XFEATURE_XTILEDATA: u64 = 18;
    let call = |code: u64, arg: u64| -> i64 {
        let ret: i64;
        // SAFETY: arch_prctl with these codes reads its arguments as integers (or writes one u64
        // through the pointer given for ARCH_GET_XCOMP_PERM, which points at a live local); the
        // syscall instruction clobbers rcx and r11 only, as declared.
        unsafe {
            std::arch::asm!(
                "syscall",
                inlateout("rax") SYS_ARCH_PRCTL => ret,
                in("rdi") code,
                in("rsi") arg,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack)
            );
        }
        ret
    };
    if call(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0 {
        return false;
    }
    let mut granted: u64 = 0;
    call(ARCH_GET_XCOMP_PERM, &mut granted as *mut u64 as u64) == 0 && granted & (1 << XFEATURE_XTILEDATA) != 0
}

/// Elsewhere no tile state is granted (other systems are not asked: their rules differ).
#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
pub fn request_amx_tiles() -> bool {
    false
}
