//! The rules of batches, shared by the v1 API and the dashboard.

use tessera_store::Project;

/// The status a new batch of `project` starts in: batches of rapid/studio projects are
/// staged until finalized, others take tasks at once.
pub fn initial_status(project: &Project) -> String {
    if project.rapid || project.studio {
        "staging"
    } else {
        "in_progress"
    }
    .into()
}
