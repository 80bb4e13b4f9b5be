//! Task types: which are supported, what each requires, and the synthetic response a test-mode
//! task completes with. Shapes follow scale-api.md §4–§5.

use std::{fmt, str::FromStr};

use serde_json::{Map, Value};

use crate::Invalid;

/// Every task type the official SDK knows (`TaskType` values); only some are enabled here.
pub const KNOWN_TYPES: &[&str] = &[
    "annotation",
    "categorization",
    "comparison",
    "cuboidannotation",
    "datacollection",
    "documentmodel",
    "documenttranscription",
    "imageannotation",
    "laneannotation",
    "lidarannotation",
    "lidarlinking",
    "lidarsegmentation",
    "lidartopdown",
    "lineannotation",
    "namedentityrecognition",
    "pointannotation",
    "polygonannotation",
    "segmentannotation",
    "transcription",
    "textcollection",
    "videoannotation",
    "videoboxannotation",
    "videoplaybackannotation",
    "videocuboidannotation",
    "sensorfusion",
    "chat",
    "chatexperimental",
    "chatlite",
    "multichat",
    "multistage",
    "federal2dvideoannotation",
];

/// The task types Tessera accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskType {
    ImageAnnotation,
    SegmentAnnotation,
    Categorization,
    Transcription,
    DocumentTranscription,
    Annotation,
    PolygonAnnotation,
    LineAnnotation,
    PointAnnotation,
    CuboidAnnotation,
    DataCollection,
    NamedEntityRecognition,
    TextCollection,
    Comparison,
}

impl TaskType {
    pub const ALL: [TaskType; 14] = [
        TaskType::ImageAnnotation,
        TaskType::SegmentAnnotation,
        TaskType::Categorization,
        TaskType::Transcription,
        TaskType::DocumentTranscription,
        TaskType::Annotation,
        TaskType::PolygonAnnotation,
        TaskType::LineAnnotation,
        TaskType::PointAnnotation,
        TaskType::CuboidAnnotation,
        TaskType::DataCollection,
        TaskType::NamedEntityRecognition,
        TaskType::TextCollection,
        TaskType::Comparison,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskType::ImageAnnotation => "imageannotation",
            TaskType::SegmentAnnotation => "segmentannotation",
            TaskType::Categorization => "categorization",
            TaskType::Transcription => "transcription",
            TaskType::DocumentTranscription => "documenttranscription",
            TaskType::Annotation => "annotation",
            TaskType::PolygonAnnotation => "polygonannotation",
            TaskType::LineAnnotation => "lineannotation",
            TaskType::PointAnnotation => "pointannotation",
            TaskType::CuboidAnnotation => "cuboidannotation",
            TaskType::DataCollection => "datacollection",
            TaskType::NamedEntityRecognition => "namedentityrecognition",
            TaskType::TextCollection => "textcollection",
            TaskType::Comparison => "comparison",
        }
    }

    /// Required parameters, in the order they are reported. Each entry lists alternatives
    /// (any one satisfies it).
    fn required(self) -> &'static [&'static [&'static str]] {
        use TaskType::*;
        match self {
            ImageAnnotation => &[&["attachment"], &["geometries"]],
            SegmentAnnotation => &[&["attachment"], &["labels"]],
            Categorization => &[
                &["attachment"],
                &["attachment_type"],
                &["categories", "taxonomies"],
            ],
            Transcription | DataCollection => &[&["attachment"], &["attachment_type"], &["fields"]],
            DocumentTranscription => &[&["attachment"]],
            Annotation | PolygonAnnotation | LineAnnotation | PointAnnotation
            | CuboidAnnotation => &[&["attachment"], &["objects_to_annotate"]],
            NamedEntityRecognition => &[&["text"], &["labels"]],
            TextCollection => &[&["attachments"], &["fields"]],
            Comparison => &[
                &["attachments"],
                &["attachment_type"],
                &["choices", "fields"],
            ],
        }
    }
}

impl fmt::Display for TaskType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Sent and stored as its word (`"categorization"`), as Scale's `type` field is.
impl serde::Serialize for TaskType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Read from its word; a type Tessera does not offer is an error (a stored task only ever
/// has a type it accepted).
impl<'de> serde::Deserialize<'de> for TaskType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let word = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
        word.parse()
            .map_err(|_| serde::de::Error::custom(format!("unknown task type \"{word}\"")))
    }
}

/// Why a task type string cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeProblem {
    /// A real Scale type this installation does not offer (HTTP 402, "not enabled").
    NotEnabled(String),
}

impl FromStr for TaskType {
    type Err = TypeProblem;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| TypeProblem::NotEnabled(s.to_owned()))
    }
}

fn present(params: &Map<String, Value>, key: &str) -> bool {
    match params.get(key) {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(_) => true,
    }
}

/// Checks the parameters of a new task: every required field present, and the structured
/// ones of a usable shape. The message names the field.
pub fn validate(task_type: TaskType, params: &Map<String, Value>) -> Result<(), Invalid> {
    for alternatives in task_type.required() {
        if !alternatives.iter().any(|key| present(params, key)) {
            let names = alternatives
                .iter()
                .map(|k| format!("\"{k}\""))
                .collect::<Vec<_>>()
                .join(" or ");
            return Err(Invalid(format!(
                "Please include the {names} parameter for {task_type} tasks."
            )));
        }
    }
    let expect = |key: &str, ok: fn(&Value) -> bool, what: &str| -> Result<(), Invalid> {
        match params.get(key) {
            Some(v) if !v.is_null() && !ok(v) => {
                Err(Invalid(format!("The \"{key}\" parameter must be {what}.")))
            }
            _ => Ok(()),
        }
    };
    expect(
        "attachment",
        Value::is_string,
        "a string (a URL or file reference)",
    )?;
    expect("attachments", Value::is_array, "a list")?;
    expect(
        "geometries",
        Value::is_object,
        "an object keyed by geometry (box, polygon, …)",
    )?;
    expect("objects_to_annotate", Value::is_array, "a list of labels")?;
    expect("categories", Value::is_array, "a list")?;
    expect("labels", Value::is_array, "a list")?;
    expect("choices", Value::is_array, "a list")?;
    expect("text", Value::is_string, "a string")?;
    expect(
        "fields",
        |v| v.is_object() || v.is_array(),
        "an object or a list",
    )?;
    if let Some(Value::Object(geometries)) = params.get("geometries") {
        const KINDS: [&str; 6] = ["box", "polygon", "line", "point", "cuboid", "ellipse"];
        if let Some(bad) = geometries.keys().find(|k| !KINDS.contains(&k.as_str())) {
            return Err(Invalid(format!(
                "Unknown geometry \"{bad}\" (expected box, polygon, line, point, cuboid or ellipse)."
            )));
        }
    }
    Ok(())
}

/// A label's name: labels are given as strings or as objects with `choice` or `name`.
fn label_name(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o
            .get("choice")
            .or_else(|| o.get("name"))
            .or_else(|| o.get("label"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        _ => None,
    }
}

fn labels(params: &Map<String, Value>, key: &str) -> Vec<String> {
    params
        .get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(label_name).collect())
        .unwrap_or_default()
}

/// Field ids of `fields`, given either as `{id: description}` or `[{field_id, …}]`.
fn field_ids(params: &Map<String, Value>) -> Vec<String> {
    match params.get("fields") {
        Some(Value::Object(o)) => o.keys().cloned().collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|f| match f {
                Value::String(s) => Some(s.clone()),
                Value::Object(o) => o
                    .get("field_id")
                    .or_else(|| o.get("id"))
                    .or_else(|| o.get("name"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

mod choices;
pub mod overlay;
mod response;
pub mod search;
mod synthetic;

pub use choices::{apply_choices, choice_questions, AnswerSlot, ChoiceQuestion};
pub use response::{annotates_nothing, check_response, response_template, MAX_RESPONSE_BYTES};
pub use synthetic::synthetic_response;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn types_parse_or_are_not_enabled() {
        assert_eq!(
            "imageannotation".parse::<TaskType>().unwrap(),
            TaskType::ImageAnnotation
        );
        assert_eq!(
            "videoannotation".parse::<TaskType>(),
            Err(TypeProblem::NotEnabled("videoannotation".into()))
        );
        for t in TaskType::ALL {
            assert!(KNOWN_TYPES.contains(&t.as_str()));
        }
    }

    #[test]
    fn required_fields_are_named() {
        let err = validate(
            TaskType::ImageAnnotation,
            &params(json!({"geometries": {"box": {}}})),
        )
        .unwrap_err();
        assert!(err.0.contains("\"attachment\""), "{}", err.0);
        let err = validate(
            TaskType::Categorization,
            &params(json!({"attachment": "a", "attachment_type": "text"})),
        )
        .unwrap_err();
        assert!(err.0.contains("\"categories\" or \"taxonomies\""));
        assert!(validate(
            TaskType::DocumentTranscription,
            &params(json!({"attachment": "https://x/y.pdf"}))
        )
        .is_ok());
        let err = validate(
            TaskType::Annotation,
            &params(json!({"attachment": "a", "objects_to_annotate": "car"})),
        )
        .unwrap_err();
        assert!(err.0.contains("must be a list"));
        let err = validate(
            TaskType::ImageAnnotation,
            &params(json!({"attachment": "a", "geometries": {"blob": {}}})),
        )
        .unwrap_err();
        assert!(err.0.contains("Unknown geometry"));
        // Lenient on extra fields and stringly numbers.
        assert!(validate(TaskType::Annotation, &params(json!({"attachment": "a", "objects_to_annotate": ["car"], "min_width": "30", "force": true}))).is_ok());
    }

    #[test]
    fn responses_are_checked_against_the_task() {
        let cat = params(json!({"categories": ["a", "b"]}));
        assert!(check_response(TaskType::Categorization, &cat, &json!({"category": "a"})).is_ok());
        let err =
            check_response(TaskType::Categorization, &cat, &json!({"category": "c"})).unwrap_err();
        assert!(err.0.contains("not one of"), "{err:?}");
        assert!(check_response(TaskType::Categorization, &cat, &json!([1])).is_err());
        let image = params(json!({"geometries": {"box": {"objects_to_annotate": ["car"]}}}));
        let good = synthetic_response(TaskType::ImageAnnotation, &image);
        assert!(check_response(TaskType::ImageAnnotation, &image, &good).is_ok());
        let err = check_response(TaskType::ImageAnnotation, &image,
            &json!({"annotations": [{"type": "box", "label": "bus", "left": 1, "top": 1, "width": 1, "height": 1}]})).unwrap_err();
        assert!(err.0.contains("bus"), "{err:?}");
        let err = check_response(
            TaskType::ImageAnnotation,
            &image,
            &json!({"annotations": [{"type": "box", "label": "car", "left": 1}]}),
        )
        .unwrap_err();
        assert!(err.0.contains("top"), "{err:?}");
        let err = check_response(
            TaskType::ImageAnnotation,
            &image,
            &json!({"annotations": [{"type": "point", "label": "car"}]}),
        )
        .unwrap_err();
        assert!(err.0.contains("does not ask"), "{err:?}");
        let dc = params(json!({"fields": {"phone": "Phone"}}));
        assert!(check_response(TaskType::DataCollection, &dc, &json!({"fields": {}})).is_err());
        for t in TaskType::ALL {
            let p = params(json!({}));
            let r = synthetic_response(t, &p);
            assert!(check_response(t, &p, &r).is_ok(), "{t:?}: {r}");
        }
    }

    /// Parameters of a realistic task of each type (as sdk-tests/support.py creates them).
    fn realistic(t: TaskType) -> Map<String, Value> {
        use TaskType::*;
        params(match t {
            ImageAnnotation => {
                json!({"attachment": "a", "geometries": {"box": {"objects_to_annotate": ["car"]}, "point": {"objects_to_annotate": ["lamp"]}}})
            }
            SegmentAnnotation => json!({"attachment": "a", "labels": ["road", "sky"]}),
            Categorization => {
                json!({"attachment": "a", "attachment_type": "text", "categories": ["yes", "no"]})
            }
            Transcription | DataCollection => {
                json!({"attachment": "a", "attachment_type": "image", "fields": {"phone": "Phone"}})
            }
            DocumentTranscription => json!({"attachment": "a"}),
            Annotation | PolygonAnnotation | LineAnnotation | PointAnnotation
            | CuboidAnnotation => {
                json!({"attachment": "a", "objects_to_annotate": ["car"]})
            }
            NamedEntityRecognition => json!({"text": "Paris is big", "labels": [{"name": "CITY"}]}),
            TextCollection => {
                json!({"attachments": ["a"], "fields": [{"field_id": "summary", "type": "text"}]})
            }
            Comparison => {
                json!({"attachments": ["a", "b"], "attachment_type": "image", "choices": ["left", "right"]})
            }
        })
    }

    #[test]
    fn the_editor_template_is_not_an_answer() {
        for t in TaskType::ALL {
            let p = realistic(t);
            let template = response_template(t, &p);
            let refused = check_response(t, &p, &template).is_err();
            assert!(
                refused || annotates_nothing(t, &template),
                "{t:?}: the template {template} would be accepted as an answer"
            );
            // The synthetic (test-mode) response stays a complete, valid answer.
            let synthetic = synthetic_response(t, &p);
            assert!(
                check_response(t, &p, &synthetic).is_ok(),
                "{t:?}: {synthetic}"
            );
            // (A document's synthetic response is empty: there is nothing in params to fill.)
            if t != TaskType::DocumentTranscription {
                assert!(!annotates_nothing(t, &synthetic), "{t:?}: {synthetic}");
            }
        }
        let cat = realistic(TaskType::Categorization);
        assert_eq!(
            response_template(TaskType::Categorization, &cat),
            json!({"category": null})
        );
        let err =
            check_response(TaskType::Categorization, &cat, &json!({"category": null})).unwrap_err();
        assert_eq!(err.0, "Choose a category: one of yes, no.");
        let dc = realistic(TaskType::DataCollection);
        let err = check_response(
            TaskType::DataCollection,
            &dc,
            &response_template(TaskType::DataCollection, &dc),
        )
        .unwrap_err();
        assert_eq!(err.0, "The field \"phone\" has no answer.");
        let image = realistic(TaskType::ImageAnnotation);
        let empty = json!({"annotations": [], "global_attributes": {}});
        assert!(check_response(TaskType::ImageAnnotation, &image, &empty).is_ok());
        assert!(annotates_nothing(TaskType::ImageAnnotation, &empty));
        let multiple = params(json!({"categories": ["a", "b"], "allow_multiple": true}));
        assert!(check_response(
            TaskType::Categorization,
            &multiple,
            &json!({"category": ["a", "b"]})
        )
        .is_ok());
        assert!(check_response(
            TaskType::Categorization,
            &multiple,
            &json!({"category": []})
        )
        .is_err());
        let tax = params(
            json!({"taxonomies": {"color": {"type": "category", "choices": ["red", "blue"]}}}),
        );
        let template = response_template(TaskType::Categorization, &tax);
        assert_eq!(template, json!({"taxonomies": {"color": []}}));
        let err = check_response(TaskType::Categorization, &tax, &template).unwrap_err();
        assert!(err.0.contains("Choose the taxonomy \"color\""), "{err:?}");
        assert!(check_response(
            TaskType::Categorization,
            &tax,
            &json!({"taxonomies": {"color": ["red"]}})
        )
        .is_ok());
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let cat = realistic(TaskType::Categorization);
        let err = check_response(
            TaskType::Categorization,
            &cat,
            &json!({"category": "yes", "extra": 1}),
        )
        .unwrap_err();
        assert_eq!(
            err.0,
            "Unknown field \"extra\" in the response; a categorization response has only \"category\"."
        );
        let err = check_response(
            TaskType::Categorization,
            &cat,
            &json!({"category": "yes", "b": 1, "a": 2}),
        )
        .unwrap_err();
        assert!(
            err.0
                .starts_with("Unknown fields \"a\", \"b\" in the response"),
            "{err:?}"
        );
        let image = realistic(TaskType::ImageAnnotation);
        let err = check_response(
            TaskType::ImageAnnotation,
            &image,
            &json!({"annotations": [{"type": "box", "label": "car", "left": 1, "top": 1, "width": 1, "height": 1, "colour": "red"}]}),
        )
        .unwrap_err();
        assert!(
            err.0
                .starts_with("Unknown field \"colour\" in annotation 1; a box annotation has only"),
            "{err:?}"
        );
        let dc = realistic(TaskType::DataCollection);
        let err = check_response(
            TaskType::DataCollection,
            &dc,
            &json!({"fields": {"phone": "1", "fax": "2"}}),
        )
        .unwrap_err();
        assert!(
            err.0.starts_with("Unknown field \"fax\" in \"fields\""),
            "{err:?}"
        );
        let ner = realistic(TaskType::NamedEntityRecognition);
        let err = check_response(
            TaskType::NamedEntityRecognition,
            &ner,
            &json!({"annotations": [{"label": "CITY", "start": 0, "end": 5, "score": 1}]}),
        )
        .unwrap_err();
        assert!(err.0.contains("an entity annotation"), "{err:?}");
    }

    #[test]
    fn synthetic_responses_follow_the_task() {
        let r = synthetic_response(
            TaskType::ImageAnnotation,
            &params(json!({"geometries": {
            "box": {"objects_to_annotate": ["car", {"choice": "bus"}]}, "point": {"objects_to_annotate": ["lamp"]}}})),
        );
        let a = r["annotations"].as_array().unwrap();
        assert_eq!(a.len(), 3);
        assert!(a
            .iter()
            .any(|x| x["type"] == "box" && x["label"] == "bus" && x["width"].is_number()));
        assert!(a
            .iter()
            .any(|x| x["type"] == "point" && x["label"] == "lamp"));
        let r = synthetic_response(
            TaskType::Categorization,
            &params(json!({"categories": ["public", "private"]})),
        );
        assert_eq!(r, json!({"category": "public"}));
        let r = synthetic_response(
            TaskType::DataCollection,
            &params(json!({"fields": {"phone": "Phone number"}})),
        );
        assert_eq!(r, json!({"fields": {"phone": "test response"}}));
        let r = synthetic_response(
            TaskType::NamedEntityRecognition,
            &params(json!({"text": "Paris is big", "labels": [{"name": "CITY"}]})),
        );
        assert_eq!(r["annotations"][0]["text"], "Paris");
        let r = synthetic_response(
            TaskType::PolygonAnnotation,
            &params(json!({"objects_to_annotate": ["roof"]})),
        );
        assert_eq!(r["annotations"][0]["label"], "roof");
        assert!(r["annotations"][0]["vertices"].is_array());
    }
}
