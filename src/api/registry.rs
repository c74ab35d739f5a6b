//! The state machines the API knows: those of the daemon's config, and those created through
//! `CreateStateMachine` (held in memory). Every one is compiled once, when it is added.

use super::protocol::{valid_name, ApiError};
use crate::asl::arn::Arn;
use crate::asl::diagnostic::{codes, Diagnostic};
use crate::asl::effect::WorkflowType;
use crate::asl::time::Millis;
use crate::asl::{compile, Program};
use crate::integrations::{unserved_resources, Served};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

pub struct StateMachine {
    pub name: String,
    pub arn: String,
    /// The definition as given (DescribeStateMachine returns it verbatim).
    pub definition: String,
    pub program: Arc<Program>,
    pub workflow_type: WorkflowType,
    pub role_arn: String,
    pub created_ms: Millis,
    pub revision: u64,
}

pub struct Registry {
    region: String,
    account: String,
    machines: RwLock<BTreeMap<String, Arc<StateMachine>>>,
    /// What Task resources this deployment serves: others make a definition invalid.
    served: Served,
    /// State machines held at once; creating one more is `StateMachineLimitExceeded`.
    max_state_machines: usize,
}

/// Parses and compiles a definition; every diagnostic on failure. Diagnostics with code
/// `UNSUPPORTED` alone do not fail validation, but a definition using them cannot be run.
pub fn compile_text(definition: &str) -> Result<Program, Vec<Diagnostic>> {
    let value: serde_json::Value = crate::asl::json::from_str(definition).map_err(|e| {
        vec![Diagnostic::new(
            codes::INVALID_JSON,
            "",
            format!("the definition is not JSON: {e}"),
        )]
    })?;
    compile(&value)
}

/// `Invalid State Machine Definition: 'CODE: message at /pointer', …` (AWS's wording for
/// `InvalidDefinition`, with this engine's diagnostics).
pub fn invalid_definition(diags: &[Diagnostic]) -> ApiError {
    let items: Vec<String> = diags
        .iter()
        .map(|d| {
            let at = if d.pointer.is_empty() {
                "/"
            } else {
                &d.pointer
            };
            format!("'{}: {} at {at}'", d.code, d.message)
        })
        .collect();
    ApiError::new(
        "InvalidDefinition",
        format!("Invalid State Machine Definition: {}", items.join(", ")),
    )
}

impl Registry {
    pub fn new(region: &str, account: &str, served: Served) -> Registry {
        Registry {
            region: region.to_string(),
            account: account.to_string(),
            machines: RwLock::new(BTreeMap::new()),
            served,
            max_state_machines: usize::MAX,
        }
    }

    /// Caps the number of state machines (`api.max_state_machines`).
    pub fn with_max_state_machines(mut self, max: usize) -> Registry {
        self.max_state_machines = max;
        self
    }

    /// Compiles a definition to run here: valid ASL whose Task resources are all served.
    fn compile_runnable(&self, definition: &str) -> Result<Program, ApiError> {
        let program = compile_text(definition).map_err(|d| invalid_definition(&d))?;
        let value: serde_json::Value = serde_json::from_str(definition).unwrap_or_default();
        let unserved = unserved_resources(&value, self.served);
        if unserved.is_empty() {
            Ok(program)
        } else {
            Err(invalid_definition(&unserved))
        }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    pub fn arn_of(&self, name: &str) -> String {
        format!(
            "arn:aws:states:{}:{}:stateMachine:{name}",
            self.region, self.account
        )
    }

    pub fn default_role(&self) -> String {
        format!("arn:aws:iam::{}:role/expressway", self.account)
    }

    /// The name an ARN of this region and account names, or `InvalidArn`.
    pub fn name_of_arn<'a>(&self, arn: &'a str) -> Result<&'a str, ApiError> {
        let prefix = format!(
            "arn:aws:states:{}:{}:stateMachine:",
            self.region, self.account
        );
        match arn.strip_prefix(&prefix) {
            Some(name) if !name.is_empty() => Ok(name),
            _ if arn.starts_with("arn:") => {
                // Another region/account, or not a state machine ARN at all.
                if Arn::parse(arn).is_some_and(|a| a.resource_type() == "stateMachine") {
                    Err(ApiError::new(
                        "StateMachineDoesNotExist",
                        format!("State Machine Does Not Exist: '{arn}'"),
                    ))
                } else {
                    Err(ApiError::new("InvalidArn", format!("Invalid Arn: '{arn}'")))
                }
            }
            _ => Err(ApiError::new("InvalidArn", format!("Invalid Arn: '{arn}'"))),
        }
    }

    /// By ARN, or (for nested executions) by bare name.
    pub fn resolve(&self, arn_or_name: &str) -> Result<Arc<StateMachine>, ApiError> {
        let name = if arn_or_name.starts_with("arn:") {
            self.name_of_arn(arn_or_name)?
        } else {
            arn_or_name
        };
        self.machines
            .read()
            .expect("registry lock")
            .get(name)
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    "StateMachineDoesNotExist",
                    format!("State Machine Does Not Exist: '{}'", self.arn_of(name)),
                )
            })
    }

    pub fn list(&self) -> Vec<Arc<StateMachine>> {
        self.machines
            .read()
            .expect("registry lock")
            .values()
            .cloned()
            .collect()
    }

    /// Adds a state machine; `StateMachineAlreadyExists` if the name is taken by a different
    /// definition (AWS's idempotent create returns the existing one when all is the same).
    pub fn create(
        &self,
        name: &str,
        definition: &str,
        workflow_type: WorkflowType,
        role_arn: Option<&str>,
        now: Millis,
    ) -> Result<Arc<StateMachine>, ApiError> {
        if !valid_name(name) {
            return Err(ApiError::new(
                "InvalidName",
                format!("Invalid Name: '{name}' (use 1 to 80 of A-Z a-z 0-9 - _)"),
            ));
        }
        let program = self.compile_runnable(definition)?;
        let mut machines = self.machines.write().expect("registry lock");
        if let Some(existing) = machines.get(name) {
            if existing.definition == definition && existing.workflow_type == workflow_type {
                return Ok(existing.clone());
            }
            return Err(ApiError::new(
                "StateMachineAlreadyExists",
                format!("State Machine Already Exists: '{}'", existing.arn),
            ));
        }
        if machines.len() >= self.max_state_machines {
            // AWS's exception (botocore: CreateStateMachine's StateMachineLimitExceeded).
            return Err(ApiError::new(
                "StateMachineLimitExceeded",
                format!(
                    "The maximum number of state machines ({}) has been reached. Existing state \
                     machines must be deleted before a new state machine can be created.",
                    self.max_state_machines
                ),
            ));
        }
        let sm = Arc::new(StateMachine {
            name: name.to_string(),
            arn: self.arn_of(name),
            definition: definition.to_string(),
            program: Arc::new(program),
            workflow_type,
            role_arn: role_arn.map_or_else(|| self.default_role(), str::to_string),
            created_ms: now,
            revision: 1,
        });
        machines.insert(name.to_string(), sm.clone());
        Ok(sm)
    }

    /// Replaces the definition and/or role; executions already running keep the old program.
    pub fn update(
        &self,
        arn: &str,
        definition: Option<&str>,
        role_arn: Option<&str>,
    ) -> Result<Arc<StateMachine>, ApiError> {
        let current = self.resolve(arn)?;
        let program = match definition {
            Some(d) => Arc::new(self.compile_runnable(d)?),
            None => current.program.clone(),
        };
        let sm = Arc::new(StateMachine {
            name: current.name.clone(),
            arn: current.arn.clone(),
            definition: definition.map_or_else(|| current.definition.clone(), str::to_string),
            program,
            workflow_type: current.workflow_type,
            role_arn: role_arn.map_or_else(|| current.role_arn.clone(), str::to_string),
            created_ms: current.created_ms,
            revision: current.revision + 1,
        });
        self.machines
            .write()
            .expect("registry lock")
            .insert(sm.name.clone(), sm.clone());
        Ok(sm)
    }

    /// Deleting what does not exist succeeds, as in AWS.
    pub fn delete(&self, arn: &str) -> Result<(), ApiError> {
        let name = self.name_of_arn(arn).or_else(|e| {
            if e.code == "StateMachineDoesNotExist" {
                Ok("")
            } else {
                Err(e)
            }
        })?;
        self.machines.write().expect("registry lock").remove(name);
        Ok(())
    }
}
