//! The Worker's logs: one JSON object per line on the console (see `chatfn_telemetry::json`),
//! which Workers Logs indexes by field, so a chat's lines are found by `chat_id`.

use std::sync::Once;

/// Sets the logs up, once per isolate.
pub(crate) fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| chatfn_telemetry::init_json_lines(console));
}

fn console(line: &str) {
    worker::console_log!("{line}");
}
