//! The questions a labeler answers by picking from a list (a categorization's categories or
//! taxonomies, a comparison's choices), as the labeling page shows them: radio buttons (or
//! check boxes where several may be picked), and how the picks enter the response JSON.
//!
//! The page's JSON editor stays the response that is checked and sent; the buttons write into
//! it. Without JavaScript they are sent as form fields, and [`apply_choices`] writes them into
//! the editor's JSON on the server, so the form works the same either way.

use serde_json::{Map, Value};

use super::{label_name, labels, TaskType};

/// Where a question's answer goes in the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerSlot {
    /// `response.category` (a string, or a list where several may be picked).
    Category,
    /// `response.taxonomies.<name>` (always a list, as the editor's template has it).
    Taxonomy(String),
    /// `response.choice` (a comparison's one choice).
    Choice,
}

/// One question with its options, in the order the customer gave them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChoiceQuestion {
    pub slot: AnswerSlot,
    /// What the page calls the question (the taxonomy's name); `None` for the task's one
    /// question, which its instruction asks.
    pub title: Option<String>,
    pub options: Vec<String>,
    /// Several options may be picked (check boxes instead of radio buttons).
    pub multiple: bool,
}

impl ChoiceQuestion {
    /// The form field the page's buttons are sent as (unique per question of a task).
    pub fn field(&self) -> String {
        match &self.slot {
            AnswerSlot::Category => "category".to_owned(),
            AnswerSlot::Taxonomy(name) => format!("taxonomy:{name}"),
            AnswerSlot::Choice => "choice".to_owned(),
        }
    }
}

/// The pick-from-a-list questions of a task (empty for types answered otherwise).
pub fn choice_questions(task_type: TaskType, params: &Map<String, Value>) -> Vec<ChoiceQuestion> {
    match task_type {
        TaskType::Categorization => {
            let categories = labels(params, "categories");
            if !categories.is_empty() {
                return vec![ChoiceQuestion {
                    slot: AnswerSlot::Category,
                    title: None,
                    options: categories,
                    multiple: params.get("allow_multiple") == Some(&Value::Bool(true)),
                }];
            }
            params
                .get("taxonomies")
                .and_then(Value::as_object)
                .map(|taxonomies| {
                    taxonomies
                        .iter()
                        .filter_map(|(name, spec)| {
                            let options: Vec<String> = spec
                                .get("choices")
                                .and_then(Value::as_array)
                                .map(|c| c.iter().filter_map(label_name).collect())
                                .unwrap_or_default();
                            (!options.is_empty()).then(|| ChoiceQuestion {
                                slot: AnswerSlot::Taxonomy(name.clone()),
                                title: Some(name.clone()),
                                options,
                                multiple: spec.get("allow_multiple") == Some(&Value::Bool(true)),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default()
        }
        TaskType::Comparison => {
            let choices = labels(params, "choices");
            if choices.is_empty() {
                Vec::new()
            } else {
                vec![ChoiceQuestion {
                    slot: AnswerSlot::Choice,
                    title: None,
                    options: choices,
                    multiple: false,
                }]
            }
        }
        _ => Vec::new(),
    }
}

/// Writes the options picked on the form (`(field, option)` pairs, as sent) into `response`:
/// a question with at least one pick replaces its answer; one with none leaves the editor's
/// answer as it is. Picks are written as sent: [`super::check_response`] then refuses an
/// option the task does not have, with a message naming it. A response that is not an object
/// is left alone (the check refuses it).
pub fn apply_choices(
    questions: &[ChoiceQuestion],
    picked: &[(String, String)],
    response: &mut Value,
) {
    let Value::Object(object) = response else {
        return;
    };
    for question in questions {
        let field = question.field();
        let picks: Vec<Value> = picked
            .iter()
            .filter(|(name, _)| *name == field)
            .map(|(_, option)| Value::String(option.clone()))
            .collect();
        let Some(first) = picks.first().cloned() else {
            continue;
        };
        match &question.slot {
            AnswerSlot::Category if question.multiple => {
                object.insert("category".to_owned(), Value::Array(picks));
            }
            AnswerSlot::Category => {
                object.insert("category".to_owned(), first);
            }
            AnswerSlot::Choice => {
                object.insert("choice".to_owned(), first);
            }
            AnswerSlot::Taxonomy(name) => {
                let answer = if question.multiple {
                    picks
                } else {
                    vec![first]
                };
                let taxonomies = object
                    .entry("taxonomies")
                    .or_insert_with(|| Value::Object(Map::new()));
                if !taxonomies.is_object() {
                    *taxonomies = Value::Object(Map::new());
                }
                if let Value::Object(taxonomies) = taxonomies {
                    taxonomies.insert(name.clone(), Value::Array(answer));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::tasks::{check_response, response_template};

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn picks(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn a_categorization_asks_one_question_from_its_categories() {
        let p = params(json!({"categories": ["public", {"choice": "private"}]}));
        let questions = choice_questions(TaskType::Categorization, &p);
        assert_eq!(
            questions,
            vec![ChoiceQuestion {
                slot: AnswerSlot::Category,
                title: None,
                options: vec!["public".into(), "private".into()],
                multiple: false,
            }]
        );
        assert_eq!(questions[0].field(), "category");
        let mut response = response_template(TaskType::Categorization, &p);
        apply_choices(
            &questions,
            &picks(&[("category", "private")]),
            &mut response,
        );
        assert_eq!(response, json!({"category": "private"}));
        assert!(check_response(TaskType::Categorization, &p, &response).is_ok());
    }

    #[test]
    fn nothing_picked_leaves_the_editor_answer_and_a_bad_pick_is_refused_by_the_check() {
        let p = params(json!({"categories": ["a", "b"]}));
        let questions = choice_questions(TaskType::Categorization, &p);
        let mut typed = json!({"category": "b"});
        apply_choices(&questions, &[], &mut typed);
        assert_eq!(typed, json!({"category": "b"}));
        let mut response = json!({"category": null});
        apply_choices(&questions, &picks(&[("category", "z")]), &mut response);
        let err = check_response(TaskType::Categorization, &p, &response).unwrap_err();
        assert!(err.0.contains("\"z\" is not one of"), "{err:?}");
        let mut not_object = json!([1]);
        apply_choices(&questions, &picks(&[("category", "a")]), &mut not_object);
        assert_eq!(not_object, json!([1]));
    }

    #[test]
    fn several_categories_are_a_list_where_the_task_allows_it() {
        let p = params(json!({"categories": ["a", "b", "c"], "allow_multiple": true}));
        let questions = choice_questions(TaskType::Categorization, &p);
        assert!(questions[0].multiple);
        let mut response = json!({"category": null});
        apply_choices(
            &questions,
            &picks(&[("category", "a"), ("category", "c"), ("other", "b")]),
            &mut response,
        );
        assert_eq!(response, json!({"category": ["a", "c"]}));
        assert!(check_response(TaskType::Categorization, &p, &response).is_ok());
    }

    #[test]
    fn taxonomies_are_one_question_each() {
        let p = params(json!({"taxonomies": {
            "colour": {"type": "category", "choices": ["red", "blue"]},
            "tags": {"type": "category", "choices": ["old", "new", "odd"], "allow_multiple": true},
            "free": {"type": "text"}
        }}));
        let questions = choice_questions(TaskType::Categorization, &p);
        let fields: Vec<String> = questions.iter().map(ChoiceQuestion::field).collect();
        assert_eq!(fields, vec!["taxonomy:colour", "taxonomy:tags"]);
        let mut response = response_template(TaskType::Categorization, &p);
        apply_choices(
            &questions,
            &picks(&[
                ("taxonomy:colour", "blue"),
                ("taxonomy:tags", "old"),
                ("taxonomy:tags", "odd"),
            ]),
            &mut response,
        );
        assert_eq!(
            response,
            json!({"taxonomies": {"colour": ["blue"], "tags": ["old", "odd"], "free": []}})
        );
        assert!(check_response(TaskType::Categorization, &p, &response).is_ok());
    }

    #[test]
    fn a_comparison_with_choices_asks_for_one_and_other_types_ask_nothing() {
        let p = params(json!({"attachments": ["a", "b"], "choices": ["left", "right"]}));
        let questions = choice_questions(TaskType::Comparison, &p);
        assert_eq!(questions[0].field(), "choice");
        let mut response = response_template(TaskType::Comparison, &p);
        apply_choices(&questions, &picks(&[("choice", "right")]), &mut response);
        assert_eq!(response, json!({"choice": "right"}));
        assert!(check_response(TaskType::Comparison, &p, &response).is_ok());
        let fields = params(json!({"fields": {"q": "Question"}}));
        assert!(choice_questions(TaskType::Comparison, &fields).is_empty());
        let image = params(json!({"geometries": {"box": {"objects_to_annotate": ["car"]}}}));
        assert!(choice_questions(TaskType::ImageAnnotation, &image).is_empty());
    }
}
