//! Class names: the COCO-80 list, names read from Ultralytics model metadata, and the
//! normalisation that lets users write `traffic_light`, `Traffic Light` or `traffic light`.

/// The 80 COCO class names in Ultralytics' order, used when a model carries no names.
pub const COCO80: [&str; 80] = [
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
];

/// The canonical form of a class name for comparisons: lower case, `_` and `-` as spaces,
/// runs of spaces collapsed.
pub fn normalize(name: &str) -> String {
    name.split(|c: char| c.is_whitespace() || c == '_' || c == '-')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses the `names` metadata value Ultralytics writes into exported models: a Python dict
/// literal such as `{0: 'person', 1: 'bicycle'}`. Returns the names ordered by index, or `None`
/// when the text is not such a dict or the indices are not exactly `0..n`.
pub fn parse_names_metadata(text: &str) -> Option<Vec<String>> {
    let body = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut entries: Vec<(usize, String)> = Vec::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        let (index, after) = rest.split_once(':')?;
        let index: usize = index.trim().parse().ok()?;
        let after = after.trim_start();
        let quote = after.chars().next().filter(|c| *c == '\'' || *c == '"')?;
        let after = &after[1..];
        let end = after.find(quote)?;
        entries.push((index, after[..end].to_string()));
        rest = after[end + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    entries.sort_by_key(|(i, _)| *i);
    let ordered = entries.iter().enumerate().all(|(pos, (i, _))| pos == *i);
    (ordered && !entries.is_empty()).then(|| entries.into_iter().map(|(_, n)| n).collect())
}

/// Which classes a detector keeps: a mask over the model's class indices built from user names.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassFilter {
    allowed: Vec<bool>,
}

impl ClassFilter {
    /// Keeps every class of a model with `num_classes` classes.
    pub fn all(num_classes: usize) -> Self {
        Self {
            allowed: vec![true; num_classes],
        }
    }

    /// Keeps the classes whose normalised name is in `wanted`. Returns the names of `wanted`
    /// that the model does not know as the error.
    pub fn from_names(model_names: &[String], wanted: &[String]) -> Result<Self, Vec<String>> {
        let model: Vec<String> = model_names.iter().map(|n| normalize(n)).collect();
        let unknown: Vec<String> = wanted
            .iter()
            .filter(|w| !model.contains(&normalize(w)))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(unknown);
        }
        let wanted: Vec<String> = wanted.iter().map(|w| normalize(w)).collect();
        Ok(Self {
            allowed: model.iter().map(|m| wanted.contains(m)).collect(),
        })
    }

    /// Whether class `index` is kept.
    pub fn allows(&self, index: usize) -> bool {
        self.allowed.get(index).copied().unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_a_class_normalise_alike() {
        assert_eq!(normalize("traffic_light"), "traffic light");
        assert_eq!(normalize(" Traffic  Light "), "traffic light");
        assert_eq!(normalize("stop-sign"), "stop sign");
    }

    #[test]
    fn ultralytics_names_metadata_parses_in_index_order() {
        let names = parse_names_metadata("{1: 'bicycle', 0: 'person', 2: \"traffic light\"}");
        assert_eq!(names.unwrap(), ["person", "bicycle", "traffic light"]);
    }

    #[test]
    fn malformed_names_metadata_is_rejected() {
        assert!(parse_names_metadata("['person']").is_none());
        assert!(parse_names_metadata("{0: 'a', 2: 'b'}").is_none());
        assert!(parse_names_metadata("{0: person}").is_none());
        assert!(parse_names_metadata("{}").is_none());
    }

    #[test]
    fn filter_accepts_underscore_names_and_reports_unknown_ones() {
        let model: Vec<String> = COCO80.iter().map(|s| s.to_string()).collect();
        let f =
            ClassFilter::from_names(&model, &["traffic_light".into(), "person".into()]).unwrap();
        assert!(f.allows(0) && f.allows(9));
        assert!(!f.allows(2) && !f.allows(500));
        let err = ClassFilter::from_names(&model, &["spaceship".into()]).unwrap_err();
        assert_eq!(err, ["spaceship"]);
    }
}
