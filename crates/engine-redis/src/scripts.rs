//! The Lua scripts, one per file under `lua/`, loaded once per process. `Script` runs them by
//! SHA (EVALSHA) and loads them on a server that does not know them yet.

use std::sync::OnceLock;

use redis::Script;

/// Every script the engine runs.
pub struct Scripts {
    pub publish: Script,
    pub history: Script,
    pub presence_add: Script,
    pub presence_remove: Script,
    pub presence_get: Script,
    pub presence_stats: Script,
}

/// The process-wide scripts.
pub fn scripts() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        publish: Script::new(include_str!("../lua/publish.lua")),
        history: Script::new(include_str!("../lua/history.lua")),
        presence_add: Script::new(include_str!("../lua/presence_add.lua")),
        presence_remove: Script::new(include_str!("../lua/presence_remove.lua")),
        presence_get: Script::new(include_str!("../lua/presence_get.lua")),
        presence_stats: Script::new(include_str!("../lua/presence_stats.lua")),
    })
}
