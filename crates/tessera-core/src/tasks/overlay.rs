//! The shapes a task's response draws over its attachment, for the customer's task view (as
//! Scale's task view shows a labeled image): read from an imageannotation response's
//! `annotations` (each with its `type`) or a legacy per-geometry task's (the type fixed by the
//! task type). Whatever is not a well-formed shape is skipped: the page still shows the JSON.

use serde_json::Value;

use super::TaskType;

/// A point in the image's pixels.
pub type Point = (f64, f64);

/// One geometry, in the image's pixels (scale-api.md §4).
#[derive(Debug, Clone, PartialEq)]
pub enum Geometry {
    Box {
        left: f64,
        top: f64,
        width: f64,
        height: f64,
    },
    Polygon(Vec<Point>),
    Line(Vec<Point>),
    Point(Point),
    Ellipse {
        center: Point,
        rx: f64,
        ry: f64,
        /// Degrees, clockwise.
        rotation: f64,
    },
    /// A cuboid's front face and back face (four corners each), joined edge by edge.
    Cuboid {
        front: Vec<Point>,
        back: Vec<Point>,
    },
}

/// A labeled shape of the response.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    pub label: String,
    pub geometry: Geometry,
}

impl Geometry {
    /// Where the shape's label goes: its top-left extent.
    pub fn anchor(&self) -> Point {
        let min = |points: &[Point]| {
            points
                .iter()
                .fold((f64::MAX, f64::MAX), |(x, y), p| (x.min(p.0), y.min(p.1)))
        };
        match self {
            Geometry::Box { left, top, .. } => (*left, *top),
            Geometry::Polygon(p) | Geometry::Line(p) => min(p),
            Geometry::Point(p) => *p,
            Geometry::Ellipse { center, rx, ry, .. } => (center.0 - rx, center.1 - ry),
            Geometry::Cuboid { front, back } => {
                let (a, b) = (min(front), min(back));
                (a.0.min(b.0), a.1.min(b.1))
            }
        }
    }
}

/// Annotations of a response at most (a page draws no more; the JSON shows the rest).
pub const MAX_SHAPES: usize = 500;

/// The shapes of `response` of a `task_type` task, in order, at most [`MAX_SHAPES`].
pub fn annotations(task_type: TaskType, response: &Value) -> Vec<Annotation> {
    let legacy_kind = match task_type {
        TaskType::ImageAnnotation => None,
        TaskType::Annotation => Some("box"),
        TaskType::PolygonAnnotation => Some("polygon"),
        TaskType::LineAnnotation => Some("line"),
        TaskType::PointAnnotation => Some("point"),
        TaskType::CuboidAnnotation => Some("cuboid"),
        _ => return Vec::new(),
    };
    let Some(items) = response.get("annotations").and_then(Value::as_array) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let kind = item.get("type").and_then(Value::as_str).or(legacy_kind)?;
            Some(Annotation {
                label: item
                    .get("label")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                geometry: geometry(kind, item)?,
            })
        })
        .take(MAX_SHAPES)
        .collect()
}

/// A finite number field of `item`.
fn number(item: &Value, key: &str) -> Option<f64> {
    item.get(key)?.as_f64().filter(|n| n.is_finite())
}

fn point(item: &Value) -> Option<Point> {
    Some((number(item, "x")?, number(item, "y")?))
}

/// Every entry of `item[key]` as a point, or nothing when one is not.
fn points(item: &Value, key: &str) -> Option<Vec<Point>> {
    item.get(key)?.as_array()?.iter().map(point).collect()
}

fn geometry(kind: &str, item: &Value) -> Option<Geometry> {
    Some(match kind {
        "box" => Geometry::Box {
            left: number(item, "left")?,
            top: number(item, "top")?,
            width: number(item, "width")?.max(0.0),
            height: number(item, "height")?.max(0.0),
        },
        "polygon" => Geometry::Polygon(points(item, "vertices").filter(|v| v.len() >= 3)?),
        "line" => Geometry::Line(points(item, "vertices").filter(|v| v.len() >= 2)?),
        "point" => Geometry::Point(point(item)?),
        "ellipse" => Geometry::Ellipse {
            center: point(item)?,
            rx: number(item, "rx")?.max(0.0),
            ry: number(item, "ry")?.max(0.0),
            rotation: number(item, "rotation").unwrap_or(0.0),
        },
        "cuboid" => {
            let mut corners = points(item, "points").filter(|p| p.len() == 8)?;
            let back = corners.split_off(4);
            Geometry::Cuboid {
                front: corners,
                back,
            }
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::synthetic_response;
    use serde_json::json;

    #[test]
    fn reads_each_geometry_of_an_imageannotation_response() {
        let response = json!({"annotations": [
            {"type": "box", "label": "car", "left": 10, "top": 20.5, "width": 50, "height": 40},
            {"type": "polygon", "label": "lane", "vertices": [{"x": 1, "y": 2}, {"x": 3, "y": 4}, {"x": 5, "y": 0}]},
            {"type": "line", "label": "edge", "vertices": [{"x": 0, "y": 0}, {"x": 9, "y": 9}]},
            {"type": "point", "label": "eye", "x": 7, "y": 8},
            {"type": "ellipse", "label": "wheel", "x": 30, "y": 30, "rx": 5, "ry": 3, "rotation": 45},
        ]});
        let shapes = annotations(TaskType::ImageAnnotation, &response);
        assert_eq!(shapes.len(), 5);
        assert_eq!(
            shapes[0],
            Annotation {
                label: "car".into(),
                geometry: Geometry::Box {
                    left: 10.0,
                    top: 20.5,
                    width: 50.0,
                    height: 40.0
                }
            }
        );
        assert_eq!(shapes[1].geometry.anchor(), (1.0, 0.0));
        assert_eq!(shapes[3].geometry, Geometry::Point((7.0, 8.0)));
        assert_eq!(shapes[4].geometry.anchor(), (25.0, 27.0));
    }

    #[test]
    fn malformed_shapes_are_skipped_not_guessed() {
        let response = json!({"annotations": [
            {"type": "box", "label": "no width", "left": 1, "top": 1, "height": 2},
            {"type": "polygon", "label": "two points", "vertices": [{"x": 1, "y": 2}, {"x": 3, "y": 4}]},
            {"type": "point", "label": "text", "x": "1", "y": 2},
            {"type": "hexagon", "label": "unknown", "x": 1, "y": 2},
            "not an object",
            {"type": "box", "left": 1, "top": 2, "width": 3, "height": 4},
        ]});
        let shapes = annotations(TaskType::ImageAnnotation, &response);
        assert_eq!(shapes.len(), 1);
        assert_eq!(shapes[0].label, "");
        assert!(annotations(TaskType::ImageAnnotation, &json!({"annotations": {}})).is_empty());
        assert!(annotations(TaskType::Categorization, &json!({"category": "a"})).is_empty());
    }

    #[test]
    fn legacy_types_take_their_geometry_from_the_task_type() {
        let params = json!({"objects_to_annotate": ["car", "bus"]});
        let params = params.as_object().unwrap();
        for task_type in [
            TaskType::Annotation,
            TaskType::PolygonAnnotation,
            TaskType::LineAnnotation,
            TaskType::PointAnnotation,
            TaskType::CuboidAnnotation,
        ] {
            let shapes = annotations(task_type, &synthetic_response(task_type, params));
            let labels: Vec<&str> = shapes.iter().map(|s| s.label.as_str()).collect();
            assert_eq!(labels, ["car", "bus"], "{task_type:?}");
        }
    }

    #[test]
    fn the_test_mode_response_of_an_imageannotation_task_draws_its_boxes() {
        let params = json!({"geometries": {"box": {"objects_to_annotate": ["car"]}}});
        let response = synthetic_response(TaskType::ImageAnnotation, params.as_object().unwrap());
        let shapes = annotations(TaskType::ImageAnnotation, &response);
        assert_eq!(
            shapes[0].geometry,
            Geometry::Box {
                left: 10.0,
                top: 10.0,
                width: 50.0,
                height: 40.0
            }
        );
    }
}
