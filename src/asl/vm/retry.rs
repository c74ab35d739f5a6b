//! Retry and Catch: what happens when a state fails.

use super::jsonpath::*;
use super::{Execution, Phase};
use crate::asl::effect::{Effect, StateEnd, Token};
use crate::asl::error::{names, EvalError, Failure};
use crate::asl::program::*;
use crate::asl::time::Millis;
use serde_json::{Map, Value};

impl Execution {
    /// Retry or Catch the failure of the current state, or fail the frame.
    pub(super) fn handle_error(
        &mut self,
        p: &Program,
        fid: u32,
        failure: Failure,
        now: Millis,
    ) -> bool {
        let f = self.frame(fid);
        f.output_bound = None;
        let heartbeat = std::mem::take(&mut f.heartbeat_missed);
        let children_failed = std::mem::take(&mut f.children_failed);
        let state = p.state(f.state);
        let error = failure.error.as_deref();
        let alias = heartbeat.then_some(names::HEARTBEAT_TIMEOUT);
        let matches = |m: &ErrorMatcher| m.matches(error) || m.matches(alias);
        let catchable = error != Some(names::RUNTIME);
        if catchable {
            if let Some((i, r)) = state
                .retry
                .iter()
                .enumerate()
                .find(|(_, r)| matches(&r.errors))
            {
                let f = self.frame(fid);
                if f.attempts.len() < state.retry.len() {
                    f.attempts.resize(state.retry.len(), 0);
                }
                let attempt = f.attempts[i];
                if attempt < r.max_attempts {
                    f.attempts[i] += 1;
                    let mut delay = r.interval_secs * r.backoff_rate.powi(attempt as i32);
                    if let Some(max) = r.max_delay_secs {
                        delay = delay.min(max);
                    }
                    if r.full_jitter {
                        delay *= self.rng.f64();
                    }
                    let f = self.frame(fid);
                    f.gen = f.gen.wrapping_add(1);
                    f.phase = Phase::Backoff;
                    let token = Token::new(fid, f.gen);
                    let at = now.saturating_add((delay * 1000.0) as Millis);
                    self.effects.push(Effect::Timer { token, at });
                    return false;
                }
            }
        }
        // Not retried: now a Parallel's or Map's failure is recorded, before it is caught
        // or ends the frame (AWS records none for an attempt it retries).
        if children_failed {
            let kind = match state.kind {
                Kind::Map(_) => "MapStateFailed",
                _ => "ParallelStateFailed",
            };
            self.event(fid, kind, Some(&state.name), now, || Value::Null);
        }
        if catchable {
            if let Some(c) = state.catch.iter().find(|c| matches(&c.errors)) {
                // AWS binds an empty string for an absent cause.
                let mut err_out = Map::new();
                let text = |s: &Option<String>| Value::String(s.clone().unwrap_or_default());
                err_out.insert("Error".into(), text(&failure.error));
                err_out.insert("Cause".into(), text(&failure.cause));
                let err_out = Value::Object(err_out);
                if c.jsonata {
                    return match self.catch_jsonata(p, fid, c, err_out, now) {
                        Ok(out) => {
                            let f = self.frame(fid);
                            f.data = out;
                            f.data_spelled = false;
                            let caught = StateEnd::Caught;
                            self.transition(p, fid, c.next, SizeBound::Measure, caught, now)
                        }
                        Err(e) => {
                            let f = self.wrap(p, fid, e);
                            self.end_frame(p, fid, Err(f), now)
                        }
                    };
                }
                let assigned = self
                    .assign_values(p, fid, c.assign.as_deref(), &err_out)
                    .and_then(|values| self.set_variables(fid, values));
                if let Err(e) = assigned {
                    let f = self.wrap(p, fid, e);
                    return self.end_frame(p, fid, Err(f), now);
                }
                let data = &mut self.frame(fid).data;
                return match apply_result_path(&c.result_path, data, err_out) {
                    Ok(()) => {
                        let caught = StateEnd::Caught;
                        self.transition(p, fid, c.next, SizeBound::Measure, caught, now)
                    }
                    Err(detail) => {
                        let f = self.wrap(
                            p,
                            fid,
                            EvalError::new(names::RESULT_PATH_MATCH_FAILURE, detail),
                        );
                        self.end_frame(p, fid, Err(f), now)
                    }
                };
            }
        }
        self.end_frame(p, fid, Err(failure), now)
    }
}
