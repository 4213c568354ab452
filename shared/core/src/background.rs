//! Work a function starts during init that the runtime must not wait for.
//!
//! Loading the phone number metadata and the TLS root certificates takes several
//! milliseconds of CPU. On a thread of normal priority that work competes with the main
//! thread for Lambda's fraction of a vCPU (and for the two cores of a small machine) and
//! delays the runtime's first `/next`, which is exactly what it was moved off the main thread
//! to avoid. At the lowest priority it runs on the CPU the init leaves idle, chiefly while the
//! runtime waits for its first event; a request that needs it first waits for it, and the
//! scheduler then gives it the CPU because nothing else wants it.

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
