//! Task types: which are supported, what each requires, and the synthetic response a test-mode
//! task completes with. Shapes follow scale-api.md §4–§5.

use std::{fmt, str::FromStr};

use serde_json::{json, Map, Value};

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

fn field_answers(params: &Map<String, Value>) -> Value {
    Value::Object(
        field_ids(params)
            .into_iter()
            .map(|id| (id, json!("test response")))
            .collect(),
    )
}

/// One annotation of `kind` with `label`, placed at a distinct spot per index.
fn shape(kind: &str, label: &str, index: usize) -> Value {
    let offset = 10.0 + 30.0 * index as f64;
    match kind {
        "box" => {
            json!({"type": "box", "label": label, "left": offset, "top": offset, "width": 50.0, "height": 40.0})
        }
        "polygon" => json!({"type": "polygon", "label": label, "vertices": [
            {"x": offset, "y": offset}, {"x": offset + 40.0, "y": offset}, {"x": offset + 20.0, "y": offset + 30.0}]}),
        "line" => json!({"type": "line", "label": label, "vertices": [
            {"x": offset, "y": offset}, {"x": offset + 60.0, "y": offset + 20.0}]}),
        "point" => json!({"type": "point", "label": label, "x": offset, "y": offset}),
        "ellipse" => {
            json!({"type": "ellipse", "label": label, "x": offset, "y": offset, "rx": 20.0, "ry": 10.0, "rotation": 0.0})
        }
        _ => json!({"type": "cuboid", "label": label, "points": [
            {"x": offset, "y": offset}, {"x": offset + 40.0, "y": offset}, {"x": offset + 40.0, "y": offset + 40.0},
            {"x": offset, "y": offset + 40.0}, {"x": offset + 10.0, "y": offset - 10.0}, {"x": offset + 50.0, "y": offset - 10.0},
            {"x": offset + 50.0, "y": offset + 30.0}, {"x": offset + 10.0, "y": offset + 30.0}]}),
    }
}

/// The response a test-mode task completes with: shaped like a real one of its type, built
/// from the task's own labels, categories and fields so integrations can parse it.
pub fn synthetic_response(task_type: TaskType, params: &Map<String, Value>) -> Value {
    use TaskType::*;
    let legacy = |kind: &str| {
        let annotations: Vec<Value> = labels(params, "objects_to_annotate")
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let mut s = shape(kind, l, i);
                if let Value::Object(o) = &mut s {
                    o.remove("type");
                }
                s
            })
            .collect();
        json!({ "annotations": annotations })
    };
    match task_type {
        ImageAnnotation => {
            let mut annotations = Vec::new();
            if let Some(Value::Object(geometries)) = params.get("geometries") {
                for (kind, spec) in geometries {
                    let names = spec
                        .get("objects_to_annotate")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(label_name).collect::<Vec<_>>())
                        .unwrap_or_default();
                    for name in names {
                        let index = annotations.len();
                        annotations.push(shape(kind, &name, index));
                    }
                }
            }
            json!({ "annotations": annotations, "global_attributes": {} })
        }
        SegmentAnnotation => {
            let mapping: Map<String, Value> = labels(params, "labels")
                .into_iter()
                .enumerate()
                .map(|(i, l)| (l, json!({ "index": i + 1, "color": format!("#{:02x}{:02x}{:02x}", (i * 70) % 256, (120 + i * 40) % 256, (200 + i * 25) % 256) })))
                .collect();
            json!({ "annotations": { "unlabeled": null, "labeled": {}, "combined": { "image": null, "indexedImage": null } }, "labelMapping": mapping })
        }
        Categorization => {
            if let Some(first) = labels(params, "categories").into_iter().next() {
                json!({ "category": first })
            } else {
                let taxonomies: Map<String, Value> = params
                    .get("taxonomies")
                    .and_then(Value::as_object)
                    .map(|t| {
                        t.iter()
                            .map(|(name, spec)| {
                                let choice = spec
                                    .get("choices")
                                    .and_then(Value::as_array)
                                    .and_then(|c| c.first())
                                    .and_then(label_name);
                                (name.clone(), json!(choice.into_iter().collect::<Vec<_>>()))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                json!({ "taxonomies": taxonomies })
            }
        }
        Transcription => json!({ "fields": field_answers(params), "repeatable_fields": [] }),
        DataCollection | TextCollection => json!({ "fields": field_answers(params) }),
        DocumentTranscription => json!({ "fields": {}, "annotations": [] }),
        Annotation => legacy("box"),
        PolygonAnnotation => legacy("polygon"),
        LineAnnotation => legacy("line"),
        PointAnnotation => legacy("point"),
        CuboidAnnotation => legacy("cuboid"),
        NamedEntityRecognition => {
            let text = params
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let word_end = text.find(char::is_whitespace).unwrap_or(text.len());
            let annotations: Vec<Value> = labels(params, "labels")
                .into_iter()
                .take(1)
                .map(|label| json!({ "label": label, "start": 0, "end": word_end, "text": &text[..word_end] }))
                .collect();
            json!({ "annotations": annotations })
        }
        Comparison => match labels(params, "choices").into_iter().next() {
            Some(choice) => json!({ "choice": choice }),
            None => json!({ "fields": field_answers(params) }),
        },
    }
}

/// Largest response a labeler may submit, as JSON.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Checks a labeler's response against the task: the shape its type's real response has
/// (annotations, a category from the given ones, a value per field…), so customers never
/// receive a result their code cannot read. The message names what is wrong.
pub fn check_response(
    task_type: TaskType,
    params: &Map<String, Value>,
    response: &Value,
) -> Result<(), Invalid> {
    use TaskType::*;
    let Value::Object(obj) = response else {
        return Err(Invalid::new("The response must be a JSON object."));
    };
    if response.to_string().len() > MAX_RESPONSE_BYTES {
        return Err(Invalid::new("The response must be at most 1 MiB of JSON."));
    }
    let annotations = || -> Result<&Vec<Value>, Invalid> {
        obj.get("annotations")
            .and_then(Value::as_array)
            .ok_or_else(|| Invalid::new("The response needs \"annotations\": a list."))
    };
    let check_label = |i: usize, a: &Value, allowed: &[String]| -> Result<(), Invalid> {
        let label = a
            .get("label")
            .and_then(Value::as_str)
            .ok_or_else(|| Invalid(format!("Annotation {} needs a \"label\".", i + 1)))?;
        if !allowed.is_empty() && !allowed.iter().any(|l| l == label) {
            return Err(Invalid(format!(
                "Annotation {} has the label \"{label}\", which is not one of: {}.",
                i + 1,
                allowed.join(", ")
            )));
        }
        Ok(())
    };
    let check_labels = |items: &[Value], allowed: &[String]| -> Result<(), Invalid> {
        items
            .iter()
            .enumerate()
            .try_for_each(|(i, a)| check_label(i, a, allowed))
    };
    match task_type {
        ImageAnnotation => {
            let items = annotations()?;
            let geometries = params.get("geometries").and_then(Value::as_object);
            for (i, a) in items.iter().enumerate() {
                let kind = a.get("type").and_then(Value::as_str).ok_or_else(|| {
                    Invalid(format!(
                        "Annotation {} needs a \"type\" (box, polygon, …).",
                        i + 1
                    ))
                })?;
                let spec = geometries.and_then(|g| g.get(kind)).ok_or_else(|| {
                    Invalid(format!(
                        "Annotation {} is a {kind}, which this task does not ask for.",
                        i + 1
                    ))
                })?;
                let allowed: Vec<String> = spec
                    .get("objects_to_annotate")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(label_name).collect())
                    .unwrap_or_default();
                check_label(i, a, &allowed)?;
                if kind == "box" {
                    for key in ["left", "top", "width", "height"] {
                        if !a.get(key).is_some_and(Value::is_number) {
                            return Err(Invalid(format!(
                                "Box {} needs a number \"{key}\".",
                                i + 1
                            )));
                        }
                    }
                }
            }
            Ok(())
        }
        Annotation | PolygonAnnotation | LineAnnotation | PointAnnotation | CuboidAnnotation => {
            check_labels(annotations()?, &labels(params, "objects_to_annotate"))
        }
        NamedEntityRecognition => check_labels(annotations()?, &labels(params, "labels")),
        SegmentAnnotation => obj
            .get("annotations")
            .filter(|a| a.is_object())
            .map(|_| ())
            .ok_or_else(|| Invalid::new("The response needs \"annotations\": an object.")),
        Categorization => {
            let categories = labels(params, "categories");
            if categories.is_empty() {
                return obj
                    .get("taxonomies")
                    .filter(|t| t.is_object())
                    .map(|_| ())
                    .ok_or_else(|| Invalid::new("The response needs \"taxonomies\": an object."));
            }
            match obj.get("category").and_then(Value::as_str) {
                Some(c) if categories.iter().any(|x| x == c) => Ok(()),
                Some(c) => Err(Invalid(format!(
                    "\"{c}\" is not one of the categories: {}.",
                    categories.join(", ")
                ))),
                None => Err(Invalid::new("The response needs a \"category\".")),
            }
        }
        Transcription | DataCollection | TextCollection | DocumentTranscription => {
            let fields = obj
                .get("fields")
                .and_then(Value::as_object)
                .ok_or_else(|| Invalid::new("The response needs \"fields\": an object."))?;
            if task_type != DocumentTranscription {
                if let Some(missing) = field_ids(params)
                    .into_iter()
                    .find(|f| !fields.contains_key(f))
                {
                    return Err(Invalid(format!("The field \"{missing}\" has no answer.")));
                }
            }
            Ok(())
        }
        Comparison => {
            let choices = labels(params, "choices");
            if choices.is_empty() {
                return obj
                    .get("fields")
                    .filter(|f| f.is_object())
                    .map(|_| ())
                    .ok_or_else(|| Invalid::new("The response needs \"fields\": an object."));
            }
            match obj.get("choice").and_then(Value::as_str) {
                Some(c) if choices.iter().any(|x| x == c) => Ok(()),
                _ => Err(Invalid(format!(
                    "The response needs a \"choice\", one of: {}.",
                    choices.join(", ")
                ))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
