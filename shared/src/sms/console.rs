//! Local stand-in for End User Messaging: prints each message to stdout.

use super::{OutboundSms, SentSms, SmsError, SmsSender};
use crate::phone::mask;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Prints `[CONSOLE SMS] to=+1415***1234 type=PROMOTIONAL log_id=...` and the body.
/// The recipient is masked like in every log; the body is shown whole, because reading a
/// verification code off the console is how local verification works.
#[derive(Debug, Clone, Default)]
pub struct ConsoleSender {
    sent: Arc<AtomicU64>,
}

impl SmsSender for ConsoleSender {
    async fn send(&self, sms: &OutboundSms<'_>) -> Result<SentSms, SmsError> {
        let n = self.sent.fetch_add(1, Ordering::Relaxed) + 1;
        // Unique across processes too (each cold start counts from 1), like real message ids.
        let mut salt = [0u8; 4];
        let _ = getrandom::fill(&mut salt);
        let message_id = format!("console-{:08x}-{n}", u32::from_le_bytes(salt));
        let mut out = std::io::stdout().lock();
        // A closed stdout must not fail a send in local runs.
        let _ = writeln!(
            out,
            "[CONSOLE SMS] to={} type={} log_id={} message_id={message_id}\n{}\n[/CONSOLE SMS]",
            mask(sms.to),
            sms.class.as_provider_str(),
            sms.log_id,
            sms.body
        );
        Ok(SentSms { message_id })
    }

    async fn report_received(&self, message_id: &str) -> Result<(), SmsError> {
        let _ = writeln!(
            std::io::stdout().lock(),
            "[CONSOLE SMS] feedback {message_id}=RECEIVED"
        );
        Ok(())
    }
}
