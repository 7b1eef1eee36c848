//! How WebKitGTK draws the window on a machine without a GPU.
//!
//! Dealership PCs are often virtual machines, remote desktops or old boxes with no GPU render
//! node. There WebKitGTK's DMA-BUF renderer falls back to a software path that kept the
//! window's WebKitWebProcess at ~190 % CPU with the window open and nothing happening (measured
//! under Xvfb on the 2-core bench machine: BENCHMARKS.md, "desktop"; ~3 % with it off).
//! Upstream: <https://github.com/tauri-apps/tauri/issues/7183>,
//! <https://github.com/tauri-apps/wry/issues/890>. With a render node the renderer stays on;
//! a value the person set themselves always wins.

/// The WebKitGTK switch for its DMA-BUF renderer.
const VAR: &str = "WEBKIT_DISABLE_DMABUF_RENDERER";

/// Whether to turn the DMA-BUF renderer off: only without a GPU render node, and never over
/// the person's own setting.
fn turn_dmabuf_off(set_by_person: bool, has_render_node: bool) -> bool {
    !set_by_person && !has_render_node
}

/// A GPU render node (`/dev/dri/renderD*`) exists. There is no such folder on Windows or
/// macOS, where the variable is never read.
fn has_render_node() -> bool {
    std::fs::read_dir("/dev/dri").is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("renderD"))
    })
}

/// Chooses the renderer; must run before the first window, while the process has one thread.
pub(crate) fn choose_renderer() {
    if turn_dmabuf_off(std::env::var_os(VAR).is_some(), has_render_node()) {
        std::env::set_var(VAR, "1");
    }
}

#[cfg(test)]
mod tests {
    use super::turn_dmabuf_off;

    #[test]
    fn the_software_renderer_is_chosen_only_without_a_gpu_and_never_over_the_person() {
        assert!(turn_dmabuf_off(false, false));
        assert!(!turn_dmabuf_off(false, true));
        assert!(!turn_dmabuf_off(true, false));
        assert!(!turn_dmabuf_off(true, true));
    }
}
