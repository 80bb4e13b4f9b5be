//! The response a test-mode task completes with: shaped like a real one of its type.

use serde_json::{json, Map, Value};

use super::{field_ids, label_name, labels, TaskType};

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
        ImageAnnotation => image_annotations(params),
        SegmentAnnotation => segmentation(params),
        Categorization => match labels(params, "categories").into_iter().next() {
            Some(first) => json!({ "category": first }),
            None => json!({ "taxonomies": first_choices(params) }),
        },
        Transcription => json!({ "fields": field_answers(params), "repeatable_fields": [] }),
        DataCollection | TextCollection => json!({ "fields": field_answers(params) }),
        DocumentTranscription => json!({ "fields": {}, "annotations": [] }),
        Annotation => legacy("box"),
        PolygonAnnotation => legacy("polygon"),
        LineAnnotation => legacy("line"),
        PointAnnotation => legacy("point"),
        CuboidAnnotation => legacy("cuboid"),
        NamedEntityRecognition => first_entity(params),
        Comparison => match labels(params, "choices").into_iter().next() {
            Some(choice) => json!({ "choice": choice }),
            None => json!({ "fields": field_answers(params) }),
        },
    }
}

/// One annotation per label of each geometry the task asks for.
fn image_annotations(params: &Map<String, Value>) -> Value {
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

/// A segmentation result with no mask images and a colour per label.
fn segmentation(params: &Map<String, Value>) -> Value {
    let mapping: Map<String, Value> = labels(params, "labels")
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let color = format!(
                "#{:02x}{:02x}{:02x}",
                (i * 70) % 256,
                (120 + i * 40) % 256,
                (200 + i * 25) % 256
            );
            (l, json!({ "index": i + 1, "color": color }))
        })
        .collect();
    json!({ "annotations": { "unlabeled": null, "labeled": {}, "combined": { "image": null, "indexedImage": null } }, "labelMapping": mapping })
}

/// Each taxonomy answered with its first choice.
fn first_choices(params: &Map<String, Value>) -> Map<String, Value> {
    params
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
        .unwrap_or_default()
}

/// The text's first word tagged with the first label.
fn first_entity(params: &Map<String, Value>) -> Value {
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
