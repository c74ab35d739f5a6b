//! The Map state: its item processor, items, concurrency and failure tolerance, and its
//! ItemReader, ItemBatcher and ResultWriter.

use super::fields::{
    Lang, Machine, Obj, ITEM_BATCHER_FIELDS, ITEM_READER_FIELDS, PROCESSOR_CONFIG_FIELDS,
    RESULT_WRITER_FIELDS,
};
use super::values::{describe, is_jsonata, PathRule};
use super::Validator;
use serde_json::Value;

use crate::asl::diagnostic::codes::*;

impl Validator {
    pub(super) fn map_state(&mut self, st: &Obj, lang: Lang) {
        self.one_of(st, &["ItemProcessor", "Iterator"]);
        for key in ["ItemProcessor", "Iterator"] {
            if let Some(p) = st.get(key) {
                self.machine(p, &st.at(key), Machine::Processor, lang);
            }
        }
        self.path(st, "ItemsPath", PathRule::Sampler, false);
        match st.get("Items") {
            None | Some(Value::Array(_) | Value::Object(_)) => {}
            Some(Value::String(s)) if is_jsonata(s) => {}
            Some(other) => self.report(
                INVALID_TYPE,
                &st.at("Items"),
                format!(
                    "'Items' must be an array or a JSONata expression, not {}",
                    describe(other)
                ),
            ),
        }
        self.template_field(st, "ItemSelector", lang);
        self.exclusive(st, &["ItemSelector", "Parameters"]);

        self.integer(st, "MaxConcurrency", 0.0, f64::MAX, lang);
        self.path(st, "MaxConcurrencyPath", PathRule::Sampler, false);
        self.exclusive(st, &["MaxConcurrency", "MaxConcurrencyPath"]);
        self.integer(st, "ToleratedFailureCount", 0.0, f64::MAX, lang);
        self.path(st, "ToleratedFailureCountPath", PathRule::Sampler, false);
        self.exclusive(st, &["ToleratedFailureCount", "ToleratedFailureCountPath"]);
        self.number(st, "ToleratedFailurePercentage", 0.0, 100.0, lang);
        self.path(
            st,
            "ToleratedFailurePercentagePath",
            PathRule::Sampler,
            false,
        );
        self.exclusive(
            st,
            &[
                "ToleratedFailurePercentage",
                "ToleratedFailurePercentagePath",
            ],
        );
        self.optional_string(st, "Label");

        if let Some(reader) = self.sub_object(st, "ItemReader", ITEM_READER_FIELDS, lang) {
            self.resource(&reader, true);
            self.object_field(&reader, "ReaderConfig");
            self.template_field(&reader, "Parameters", lang);
            self.arguments(&reader);
        }
        if let Some(batcher) = self.sub_object(st, "ItemBatcher", ITEM_BATCHER_FIELDS, lang) {
            self.integer(&batcher, "MaxItemsPerBatch", 1.0, f64::MAX, lang);
            self.integer(&batcher, "MaxInputBytesPerBatch", 1.0, f64::MAX, lang);
            self.path(&batcher, "MaxItemsPerBatchPath", PathRule::Sampler, false);
            self.path(
                &batcher,
                "MaxInputBytesPerBatchPath",
                PathRule::Sampler,
                false,
            );
            self.exclusive(&batcher, &["MaxItemsPerBatch", "MaxItemsPerBatchPath"]);
            self.exclusive(
                &batcher,
                &["MaxInputBytesPerBatch", "MaxInputBytesPerBatchPath"],
            );
            self.template_field(&batcher, "BatchInput", lang);
        }
        if let Some(writer) = self.sub_object(st, "ResultWriter", RESULT_WRITER_FIELDS, lang) {
            self.resource(&writer, false);
            self.object_field(&writer, "WriterConfig");
            self.template_field(&writer, "Parameters", lang);
            self.arguments(&writer);
        }
    }

    pub(super) fn processor_config(&mut self, obj: &Obj) {
        let Some(cfg) = self.sub_object(
            obj,
            "ProcessorConfig",
            PROCESSOR_CONFIG_FIELDS,
            Lang::JsonPath,
        ) else {
            return;
        };
        let mode = self.enum_field(&cfg, "Mode", &["INLINE", "DISTRIBUTED"]);
        self.enum_field(&cfg, "ExecutionType", &["STANDARD", "EXPRESS"]);
        if mode == Some("DISTRIBUTED") && cfg.get("ExecutionType").is_none() {
            self.report(
                MISSING_FIELD,
                &cfg.at("ExecutionType"),
                "a DISTRIBUTED item processor needs 'ExecutionType'",
            );
        }
    }
}
