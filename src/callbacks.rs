//! Task tokens and activities (`SendTask*`, `*Activity`, `GetActivityTask`).
//!
//! Throwaway stub with the agreed interface so that the API compiles; the real module is
//! written separately and replaces this file at merge.

use std::sync::Arc;

pub struct Callbacks;

pub struct ActivityInfo {
    pub arn: String,
    pub name: String,
    pub created_ms: i64,
}

pub struct ActivityTask {
    pub task_token: String,
    pub input: String,
}

pub enum CallbackError {
    TaskDoesNotExist(String),
    InvalidToken(String),
    TaskTimedOut(String),
    ActivityDoesNotExist(String),
    InvalidArn(String),
}

impl CallbackError {
    pub fn aws_code(&self) -> &'static str {
        unimplemented!()
    }
    pub fn message(&self) -> &str {
        unimplemented!()
    }
}

#[allow(unused_variables)]
impl Callbacks {
    pub fn new(region: &str, account: &str) -> Arc<Callbacks> {
        Arc::new(Callbacks)
    }
    pub fn send_success(
        &self,
        token: &str,
        output: serde_json::Value,
    ) -> Result<(), CallbackError> {
        unimplemented!()
    }
    pub fn send_failure(
        &self,
        token: &str,
        error: Option<String>,
        cause: Option<String>,
    ) -> Result<(), CallbackError> {
        unimplemented!()
    }
    pub fn send_heartbeat(&self, token: &str) -> Result<(), CallbackError> {
        unimplemented!()
    }
    pub fn create_activity(&self, name: &str) -> ActivityInfo {
        unimplemented!()
    }
    pub fn describe_activity(&self, arn: &str) -> Result<ActivityInfo, CallbackError> {
        unimplemented!()
    }
    pub fn list_activities(&self) -> Vec<ActivityInfo> {
        unimplemented!()
    }
    pub fn delete_activity(&self, arn: &str) -> Result<(), CallbackError> {
        unimplemented!()
    }
    pub async fn get_activity_task(
        &self,
        arn: &str,
        worker_name: Option<&str>,
        wait: std::time::Duration,
    ) -> Result<Option<ActivityTask>, CallbackError> {
        unimplemented!()
    }
}
