//! STUB: being implemented.
use crate::resource::{Completion, TaskCall, TaskResource};

#[derive(Debug, thiserror::Error)]
#[error("mock configuration not implemented")]
pub struct MockConfigError;

pub struct MockConfig;
impl MockConfig {
    pub fn from_json(_text: &str) -> Result<MockConfig, MockConfigError> {
        Err(MockConfigError)
    }
    pub fn test_case(
        &self,
        _sm: Option<&str>,
        _case: &str,
    ) -> Result<MockedTestCase, MockConfigError> {
        Err(MockConfigError)
    }
}
pub struct MockedTestCase;
impl TaskResource for MockedTestCase {
    fn invoke(&self, _call: TaskCall, _done: Completion) {}
}
