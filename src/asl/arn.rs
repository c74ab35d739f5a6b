//! Amazon Resource Names: the one parser, for Task resources, activities and execution ARNs.

/// The fields of an ARN: `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE` (`RESOURCE` keeps
/// its own colons, e.g. `lambda:invoke` in `arn:aws:states:::lambda:invoke`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    /// `None` unless the text has the six fields of an ARN.
    pub fn parse(text: &'a str) -> Option<Arn<'a>> {
        let mut parts = text.splitn(6, ':');
        if parts.next()? != "arn" {
            return None;
        }
        Some(Arn {
            partition: parts.next()?,
            service: parts.next()?,
            region: parts.next()?,
            account: parts.next()?,
            resource: parts.next()?,
        })
    }

    /// An optimised integration: `arn:PARTITION:states:::SERVICE:ACTION`.
    pub fn is_optimised_integration(&self) -> bool {
        self.service == "states" && self.region.is_empty() && self.account.is_empty()
    }

    /// The resource's type and id: `("function", "f:$LATEST")` in
    /// `arn:aws:lambda:REGION:ACCOUNT:function:f:$LATEST`; `None` without a colon.
    pub fn resource_parts(&self) -> Option<(&'a str, &'a str)> {
        self.resource.split_once(':')
    }

    /// The resource's type: `function` in `…:function:f`, `lambda` in `…:::lambda:invoke`;
    /// the whole resource when it has no colon.
    pub fn resource_type(&self) -> &'a str {
        self.resource_parts()
            .map_or(self.resource, |(kind, _)| kind)
    }

    /// An activity: `arn:PARTITION:states:REGION:ACCOUNT:activity:NAME`, with every part
    /// non-empty (and an AWS partition).
    pub fn is_activity(&self) -> bool {
        self.partition.starts_with("aws")
            && self.service == "states"
            && !self.region.is_empty()
            && !self.account.is_empty()
            && self
                .resource_parts()
                .is_some_and(|(kind, name)| kind == "activity" && !name.is_empty())
    }
}

/// Whether `resource` names an activity (see [`Arn::is_activity`]).
pub fn is_activity_arn(resource: &str) -> bool {
    Arn::parse(resource).is_some_and(|arn| arn.is_activity())
}

#[cfg(test)]
mod tests {
    use super::{is_activity_arn, Arn};

    #[test]
    fn arns_split_into_their_fields() {
        let arn = Arn::parse("arn:aws:lambda:us-east-1:111:function:f:$LATEST").unwrap();
        assert_eq!(
            (arn.service, arn.region, arn.account, arn.resource),
            ("lambda", "us-east-1", "111", "function:f:$LATEST")
        );
        assert_eq!(arn.resource_parts(), Some(("function", "f:$LATEST")));
        assert!(Arn::parse("arn:aws:states:::lambda:invoke")
            .unwrap()
            .is_optimised_integration());
        assert_eq!(Arn::parse("arn:aws:states"), None);
        assert_eq!(Arn::parse("not:an:arn:at:all:x"), None);
    }

    #[test]
    fn activities_have_every_part() {
        assert!(is_activity_arn("arn:aws:states:us-east-1:1:activity:a"));
        assert!(is_activity_arn("arn:aws-cn:states:r:1:activity:a:b"));
        for not in [
            "arn:aws:states:us-east-1:1:activity:",
            "arn:aws:states:us-east-1:1:activity",
            "arn:aws:states::1:activity:a",
            "arn:aws:states:us-east-1::activity:a",
            "arn:x:states:us-east-1:1:activity:a",
            "arn::states:us-east-1:1:activity:a",
            "arn:aws:lambda:us-east-1:1:activity:a",
            "arn:aws:states:::lambda:invoke",
        ] {
            assert!(!is_activity_arn(not), "{not}");
        }
    }
}
