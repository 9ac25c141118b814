//! Coalescing: a writer that wakes for one queued item takes whatever else is queued at that
//! moment into the same frame, up to a count and a byte target. It never waits for more, so a
//! lone call leaves at once; under load, items pile up while the previous frame is being sent,
//! and the next frame carries all of them (many groups' heartbeats in one HTTP/2 message).

use tokio::sync::mpsc;

/// `first`, followed by the items queued in `queue` right now, stopping once `max_count` items
/// are taken or their `size`s add up to `bytes_target` or more (so at least `first` is taken,
/// whatever its size).
pub(crate) fn drain_ready<T>(
    first: T,
    queue: &mut mpsc::Receiver<T>,
    max_count: usize,
    bytes_target: usize,
    size: impl Fn(&T) -> usize,
) -> Vec<T> {
    let mut bytes = size(&first);
    let mut taken = Vec::with_capacity(queue.len().saturating_add(1).min(max_count.max(1)));
    taken.push(first);
    while taken.len() < max_count && bytes < bytes_target {
        let Ok(item) = queue.try_recv() else {
            break;
        };
        bytes = bytes.saturating_add(size(&item));
        taken.push(item);
    }
    taken
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue_of(items: &[usize]) -> mpsc::Receiver<usize> {
        let (tx, rx) = mpsc::channel(64);
        for &item in items {
            tx.try_send(item).unwrap();
        }
        rx
    }

    #[test]
    fn takes_everything_queued_within_the_limits() {
        let mut rx = queue_of(&[1, 1, 1]);
        assert_eq!(drain_ready(1, &mut rx, 10, 100, |n| *n), vec![1, 1, 1, 1]);
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn stops_at_the_count_limit_and_leaves_the_rest_queued() {
        let mut rx = queue_of(&[2, 3, 4, 5]);
        assert_eq!(drain_ready(1, &mut rx, 3, 100, |_| 0), vec![1, 2, 3]);
        assert_eq!(rx.try_recv().unwrap(), 4);
    }

    #[test]
    fn stops_once_the_byte_target_is_reached() {
        let mut rx = queue_of(&[40, 40, 40]);
        // 30 + 40 = 70 < 100, + 40 = 110 >= 100: stop.
        assert_eq!(drain_ready(30, &mut rx, 10, 100, |n| *n), vec![30, 40, 40]);
        assert_eq!(rx.try_recv().unwrap(), 40);
    }

    #[test]
    fn a_first_item_over_the_target_goes_alone() {
        let mut rx = queue_of(&[1]);
        assert_eq!(drain_ready(500, &mut rx, 10, 100, |n| *n), vec![500]);
    }
}
