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

/// The response the labeling editor starts from: the type's shape with nothing chosen
/// (`{"category": null}`, a `null` answer per field, no annotations). Submitting it unchanged
/// is refused, or for an empty annotation list asks for confirmation, so a labeler who presses
/// Submit without looking never sends a label they did not pick.
pub fn response_template(task_type: TaskType, params: &Map<String, Value>) -> Value {
    use TaskType::*;
    let unanswered = || {
        Value::Object(
            field_ids(params)
                .into_iter()
                .map(|id| (id, Value::Null))
                .collect(),
        )
    };
    match task_type {
        ImageAnnotation => json!({ "annotations": [], "global_attributes": {} }),
        Annotation
        | PolygonAnnotation
        | LineAnnotation
        | PointAnnotation
        | CuboidAnnotation
        | NamedEntityRecognition => json!({ "annotations": [] }),
        SegmentAnnotation => {
            let mapping = synthetic_response(task_type, params)
                .get("labelMapping")
                .cloned()
                .unwrap_or_else(|| json!({}));
            json!({ "annotations": null, "labelMapping": mapping })
        }
        Categorization => {
            if labels(params, "categories").is_empty() {
                let taxonomies: Map<String, Value> = params
                    .get("taxonomies")
                    .and_then(Value::as_object)
                    .map(|t| t.keys().map(|name| (name.clone(), json!([]))).collect())
                    .unwrap_or_default();
                json!({ "taxonomies": taxonomies })
            } else {
                json!({ "category": null })
            }
        }
        Transcription => json!({ "fields": unanswered(), "repeatable_fields": [] }),
        DataCollection | TextCollection => json!({ "fields": unanswered() }),
        DocumentTranscription => json!({ "fields": {}, "annotations": [] }),
        Comparison => {
            if labels(params, "choices").is_empty() {
                json!({ "fields": unanswered() })
            } else {
                json!({ "choice": null })
            }
        }
    }
}

/// Whether a response annotates nothing (no boxes, no entities, an empty document): a valid
/// answer when the attachment really holds nothing to annotate, but also what an untouched
/// editor sends, so the labeling page asks the labeler to confirm it.
pub fn annotates_nothing(task_type: TaskType, response: &Value) -> bool {
    use TaskType::*;
    let empty = |key: &str| match response.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        Some(_) => false,
    };
    match task_type {
        ImageAnnotation
        | Annotation
        | PolygonAnnotation
        | LineAnnotation
        | PointAnnotation
        | CuboidAnnotation
        | NamedEntityRecognition => empty("annotations"),
        DocumentTranscription => empty("annotations") && empty("fields"),
        _ => false,
    }
}

/// The top-level fields a response of this type has (scale-api.md §5).
fn response_fields(task_type: TaskType, params: &Map<String, Value>) -> &'static [&'static str] {
    use TaskType::*;
    match task_type {
        ImageAnnotation => &["annotations", "global_attributes"],
        Annotation
        | PolygonAnnotation
        | LineAnnotation
        | PointAnnotation
        | CuboidAnnotation
        | NamedEntityRecognition => &["annotations"],
        SegmentAnnotation => &["annotations", "labelMapping", "instances"],
        Categorization if labels(params, "categories").is_empty() => &["taxonomies"],
        Categorization => &["category"],
        Transcription => &["fields", "repeatable_fields"],
        DataCollection | TextCollection => &["fields"],
        DocumentTranscription => &["fields", "annotations"],
        Comparison if labels(params, "choices").is_empty() => &["fields"],
        Comparison => &["choice"],
    }
}

/// The fields one annotation of a geometry kind may have, beside `label`, `attributes` and
/// `uuid` (and `type`, which names the kind).
fn annotation_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "box" => &["left", "top", "width", "height"],
        "polygon" | "line" => &["vertices"],
        "point" => &["x", "y"],
        "ellipse" => &["x", "y", "rx", "ry", "rotation"],
        "cuboid" => &["points", "vertices", "edges"],
        "entity" => &["start", "end", "text"],
        _ => &[],
    }
}

/// "a" or "an", for "an entity annotation", "a box annotation".
fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Refuses fields of `object` outside `allowed`, naming every unknown one, where it is
/// (`place`) and what that thing (`what`) may have.
fn only_fields(
    object: &Map<String, Value>,
    allowed: &[&str],
    place: &str,
    what: &str,
) -> Result<(), Invalid> {
    let unknown: Vec<&str> = object
        .keys()
        .map(String::as_str)
        .filter(|k| !allowed.contains(k))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let noun = if unknown.len() == 1 {
        "field"
    } else {
        "fields"
    };
    Err(Invalid(format!(
        "Unknown {noun} {} in {place}; {what} has only {}.",
        quoted(&unknown),
        quoted(allowed)
    )))
}

/// Checks one annotation: an object with a label from `allowed` and only the fields its
/// geometry has.
fn check_annotation(i: usize, a: &Value, kind: &str, allowed: &[String]) -> Result<(), Invalid> {
    let object = a
        .as_object()
        .ok_or_else(|| Invalid(format!("Annotation {} must be an object.", i + 1)))?;
    let mut fields = vec!["type", "label", "attributes", "uuid"];
    fields.extend_from_slice(annotation_fields(kind));
    only_fields(
        object,
        &fields,
        &format!("annotation {}", i + 1),
        &format!("{} {kind} annotation", article(kind)),
    )?;
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
}

/// Checks the `fields` answers: an object with an answer (not `null`) for every field the
/// task asks for and no other field. Documents (`declared` false) may hold any fields.
fn check_field_answers(
    obj: &Map<String, Value>,
    params: &Map<String, Value>,
    declared: bool,
) -> Result<(), Invalid> {
    let fields = obj
        .get("fields")
        .and_then(Value::as_object)
        .ok_or_else(|| Invalid::new("The response needs \"fields\": an object."))?;
    if !declared {
        return Ok(());
    }
    let ids = field_ids(params);
    if let Some(missing) = ids
        .iter()
        .find(|f| fields.get(f.as_str()).is_none_or(Value::is_null))
    {
        return Err(Invalid(format!("The field \"{missing}\" has no answer.")));
    }
    if !ids.is_empty() {
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        only_fields(fields, &ids, "\"fields\"", "this task's \"fields\"")?;
    }
    Ok(())
}

/// Checks the answer to a categorization task with taxonomies: each taxonomy answered with
/// at least one of its choices (when it lists any), and no taxonomy the task does not have.
fn check_taxonomies(obj: &Map<String, Value>, params: &Map<String, Value>) -> Result<(), Invalid> {
    let answers = obj
        .get("taxonomies")
        .and_then(Value::as_object)
        .ok_or_else(|| Invalid::new("The response needs \"taxonomies\": an object."))?;
    let Some(asked) = params.get("taxonomies").and_then(Value::as_object) else {
        return Ok(());
    };
    let names: Vec<&str> = asked.keys().map(String::as_str).collect();
    only_fields(
        answers,
        &names,
        "\"taxonomies\"",
        "this task's \"taxonomies\"",
    )?;
    for (name, spec) in asked {
        let choices: Vec<String> = spec
            .get("choices")
            .and_then(Value::as_array)
            .map(|c| c.iter().filter_map(label_name).collect())
            .unwrap_or_default();
        if choices.is_empty() {
            continue;
        }
        let picked: Vec<&str> = match answers.get(name) {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let choose = || {
            Invalid(format!(
                "Choose the taxonomy \"{name}\": one or more of {}.",
                choices.join(", ")
            ))
        };
        if picked.is_empty() {
            return Err(choose());
        }
        if let Some(bad) = picked.iter().find(|p| !choices.iter().any(|c| c == *p)) {
            return Err(Invalid(format!(
                "\"{bad}\" is not a choice of the taxonomy \"{name}\": {}.",
                choices.join(", ")
            )));
        }
    }
    Ok(())
}

/// Checks a labeler's response against the task: the shape its type's real response has
/// (annotations, a category from the given ones, a value per field…) and no field that shape
/// lacks, so customers never receive a result their code cannot read, nor one with a label
/// nobody chose. The message names what is wrong. An empty annotation list passes here (see
/// [`annotates_nothing`]).
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
    only_fields(
        obj,
        response_fields(task_type, params),
        "the response",
        &format!("{} {task_type} response", article(task_type.as_str())),
    )?;
    let annotations = || -> Result<&Vec<Value>, Invalid> {
        obj.get("annotations")
            .and_then(Value::as_array)
            .ok_or_else(|| Invalid::new("The response needs \"annotations\": a list."))
    };
    let check_all = |kind: &str, allowed: &[String]| -> Result<(), Invalid> {
        annotations()?
            .iter()
            .enumerate()
            .try_for_each(|(i, a)| check_annotation(i, a, kind, allowed))
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
                check_annotation(i, a, kind, &allowed)?;
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
        Annotation => check_all("box", &labels(params, "objects_to_annotate")),
        PolygonAnnotation => check_all("polygon", &labels(params, "objects_to_annotate")),
        LineAnnotation => check_all("line", &labels(params, "objects_to_annotate")),
        PointAnnotation => check_all("point", &labels(params, "objects_to_annotate")),
        CuboidAnnotation => check_all("cuboid", &labels(params, "objects_to_annotate")),
        NamedEntityRecognition => check_all("entity", &labels(params, "labels")),
        SegmentAnnotation => obj
            .get("annotations")
            .filter(|a| a.is_object())
            .map(|_| ())
            .ok_or_else(|| Invalid::new("The response needs \"annotations\": an object.")),
        Categorization => {
            let categories = labels(params, "categories");
            if categories.is_empty() {
                return check_taxonomies(obj, params);
            }
            let multiple = params.get("allow_multiple") == Some(&Value::Bool(true));
            let choose = || {
                Invalid(format!(
                    "Choose a category: {} of {}.",
                    if multiple { "one or more" } else { "one" },
                    categories.join(", ")
                ))
            };
            let picked: Vec<&str> = match obj.get("category") {
                Some(Value::String(c)) => vec![c.as_str()],
                Some(Value::Array(a)) if multiple => a
                    .iter()
                    .map(|c| c.as_str().ok_or_else(choose))
                    .collect::<Result<_, _>>()?,
                _ => Vec::new(),
            };
            if picked.is_empty() {
                return Err(choose());
            }
            match picked.iter().find(|c| !categories.iter().any(|x| x == *c)) {
                Some(c) => Err(Invalid(format!(
                    "\"{c}\" is not one of the categories: {}.",
                    categories.join(", ")
                ))),
                None => Ok(()),
            }
        }
        Transcription | DataCollection | TextCollection => check_field_answers(obj, params, true),
        DocumentTranscription => check_field_answers(obj, params, false),
        Comparison => {
            let choices = labels(params, "choices");
            if choices.is_empty() {
                return check_field_answers(obj, params, true);
            }
            match obj.get("choice").and_then(Value::as_str) {
                Some(c) if choices.iter().any(|x| x == c) => Ok(()),
                _ => Err(Invalid(format!(
                    "Choose one of: {} (the response needs a \"choice\").",
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
