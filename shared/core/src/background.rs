//! Work a function starts that no one should wait for: the phone number metadata (7 ms of
//! CPU), started by a function's first event (its `main.rs`).
//!
//! At the lowest priority it runs only on CPU the request leaves idle, chiefly while the
//! request waits on its first round trips; a parse that needs the metadata first waits for it,
//! and the scheduler then gives it the CPU because nothing else wants it. It is not started
//! during init: even at this priority a thread beside init delayed the runtime's first `/next`
//! by 1–2 ms on two vCPUs (docs/bench.md, "Cold start"). Nor is it a way to do work before it
//! is needed: under load an idle-priority thread may not run at all, and the request then does
//! the work itself (the TLS roots' thread of init did not run before the first request needed
//! the roots; they are now compiled in, `sms_shared::aws`).

/// Runs `work` on a thread of its own at the lowest scheduling priority (`SCHED_IDLE`).
pub fn spawn_low_priority(name: &str, work: impl FnOnce() + Send + 'static) {
    let started = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            lower_this_threads_priority();
            work();
        });
    if let Err(error) = started {
        // Nothing is lost: whatever needs the work does it on first use instead.
        tracing::warn!(%error, "could not start a background thread");
    }
}

#[cfg(target_os = "linux")]
fn lower_this_threads_priority() {
    // SCHED_IDLE: runs only when no thread of normal priority wants the CPU (lower than nice
    // 19, which still takes a share). On Linux the scheduling policy is per thread; pid 0 is
    // the calling thread. A failure leaves the thread at normal priority, which is harmless.
    // SAFETY: a system call on the calling thread, given a valid sched_param.
    unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        libc::sched_setscheduler(0, libc::SCHED_IDLE, &param);
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_this_threads_priority() {}
