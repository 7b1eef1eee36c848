//! Which phase a call's popup is in at a desk: ringing, answered or missed, following the
//! desk's own legs when it watches extensions.

use callpop_core::model::{Call, CallDirection, CallResult, CallState, LegDirection, LegState};

/// The phase a call's popup is in; phases only move forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// The desk's phone is ringing.
    Ringing,
    /// Somebody answered.
    Answered,
    /// It ended unanswered (possibly with a voicemail).
    Missed,
}

impl Phase {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Phase::Ringing => "ringing",
            Phase::Answered => "answered",
            Phase::Missed => "missed",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Phase> {
        match s {
            "ringing" => Some(Phase::Ringing),
            "answered" => Some(Phase::Answered),
            "missed" => Some(Phase::Missed),
            _ => None,
        }
    }
}

/// The desks (receiving extensions) of a call that this desk watches.
pub(super) fn watched_parts<'a>(
    call: &'a Call,
    watched: &[String],
) -> Vec<&'a callpop_core::model::ExtensionPart> {
    call.extensions
        .iter()
        .filter(|p| p.direction != Some(LegDirection::Outbound))
        .filter(|p| watched.is_empty() || p.matches_extension(watched))
        .collect()
}

/// The phase this desk's popup for `call` should be in, if it should have one at all.
pub fn desired_phase(call: &Call, watched: &[String]) -> Option<Phase> {
    if !matches!(
        call.direction,
        CallDirection::Inbound | CallDirection::Internal
    ) {
        return None;
    }
    if call.result == Some(CallResult::NoEndReported) {
        // The phone system never said how it ended: no phase fits, and its popup closes.
        return None;
    }
    let mine = watched_parts(call, watched);
    if mine.is_empty() {
        return None;
    }
    let ringing_here = mine.iter().any(|p| p.state == Some(LegState::Ringing));
    let answered_here = mine.iter().any(|p| p.answered);
    if !watched.is_empty() && ringing_here && !answered_here {
        // The call rings at this desk now, whoever answered it before: reception took it and
        // transferred it here. By the call's result alone this desk saw it as already answered
        // and never got a popup, ringing or missed.
        return Some(Phase::Ringing);
    }
    if !watched.is_empty() && !ringing_here && !answered_here && call.result.is_none() {
        // This desk's own leg is over and nobody is known to have answered, while the call
        // goes on elsewhere: a ring group's colleague talking on Ringotel (which tells who
        // answered only when the call ends), or a hunt moving on. The desk's popup follows
        // its own leg and goes; a missed call comes back as one when the call ends.
        return None;
    }
    match call.result {
        Some(CallResult::Answered) => Some(Phase::Answered),
        Some(CallResult::Missed) | Some(CallResult::Voicemail)
            if call.state == CallState::Ended =>
        {
            Some(Phase::Missed)
        }
        None if call.state == CallState::Ringing || ringing_here => Some(Phase::Ringing),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::popups::fixtures::{call, transferred};

    #[test]
    fn phases_follow_the_call_for_watched_desks_only() {
        let ringing = call(CallState::Ringing, None, LegState::Ringing);
        assert_eq!(desired_phase(&ringing, &[]), Some(Phase::Ringing));
        assert_eq!(
            desired_phase(&ringing, &["101".into()]),
            Some(Phase::Ringing)
        );
        assert_eq!(desired_phase(&ringing, &["102".into()]), None);
        let answered = call(
            CallState::Connected,
            Some(CallResult::Answered),
            LegState::Connected,
        );
        assert_eq!(desired_phase(&answered, &[]), Some(Phase::Answered));
        let missed = call(CallState::Ended, Some(CallResult::Missed), LegState::Ended);
        assert_eq!(desired_phase(&missed, &[]), Some(Phase::Missed));
        let mut outbound = ringing;
        outbound.direction = CallDirection::Outbound;
        assert_eq!(desired_phase(&outbound, &[]), None);
    }

    #[test]
    fn a_call_transferred_to_a_watched_desk_rings_there() {
        let mut transferred = transferred(LegState::Ringing);
        assert_eq!(
            desired_phase(&transferred, &["102".into()]),
            Some(Phase::Ringing)
        );
        assert_eq!(
            desired_phase(&transferred, &["101".into()]),
            Some(Phase::Answered)
        );
        assert_eq!(desired_phase(&transferred, &[]), Some(Phase::Answered));
        // Sales picks up.
        transferred.extensions[1].answered = true;
        transferred.extensions[1].state = Some(LegState::Connected);
        assert_eq!(
            desired_phase(&transferred, &["102".into()]),
            Some(Phase::Answered)
        );
    }
}
