//! The worker's re-check of its zone (DESIGN §13): every address it is about to give the tool
//! (a hostname's just-resolved answer included) must lie in the zone this worker serves
//! (`SCANQ_WORKER_ZONE`). A name re-pointed into another zone after the job was placed is
//! refused, not scanned: this worker may not even reach that network, or may not be meant to.

use scanq::domain::{ErrorInfo, ErrorType, Zone};
use scanq::validate::{TargetList, ZoneMap};

/// `Ok` when every address is in `zone`; else the job's error, naming the first address outside
/// (and the name it came from, for a list of names), the zone it is in and this worker's zone.
pub fn check(
    zones: &ZoneMap,
    zone: &Zone,
    target: &TargetList,
    addresses: &[String],
) -> Result<(), ErrorInfo> {
    for (i, address) in addresses.iter().enumerate() {
        let Err(why) = zones.check_address(zone, address) else {
            continue;
        };
        // `resolve_list` gives one address per name unless two names share one.
        let from = match target.entries() {
            names if target.is_names() && names.len() == addresses.len() => {
                format!(" (from {})", names[i])
            }
            _ if target.is_names() => " (from one of the job's names)".to_owned(),
            _ => String::new(),
        };
        let message =
            format!("{address}{from} is {why}, outside this worker's zone {zone}: not scanned");
        tracing::warn!(worker_zone = %zone, %address, placed = %why, "Job refused: an address is outside this worker's zone");
        return Err(ErrorInfo::new(ErrorType::ValidationError, message));
    }
    Ok(())
}
