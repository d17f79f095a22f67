//! Recomputes the time index of objects written by an older server (their `index_version` is
//! behind [`crate::ical::INDEX_VERSION`]), so a new index computation never leaves old rows
//! answering queries with stale bounds. Runs at start; cheap when nothing is stale.

use crate::ical::CalendarObject;
use crate::store::{Reindexed, Result, Store};

/// Reindexes every stale object; returns how many were updated.
pub async fn reindex_stale(store: &dyn Store) -> Result<u64> {
    let mut done = 0u64;
    loop {
        let batch = store.stale_objects(500).await?;
        if batch.is_empty() {
            return Ok(done);
        }
        let items: Vec<Reindexed> = batch
            .into_iter()
            .map(|(collection_id, name, ics)| Reindexed {
                collection_id,
                name,
                index: CalendarObject::from_ics(ics).ok().map(|o| o.index.time),
            })
            .collect();
        store.set_time_indexes(&items).await?;
        done += items.len() as u64;
    }
}
