//! The request to the multimodal model: up to four group crops, each made to fit the model's
//! per-image budget, a text summary of every group (classes, counts, spacing, speeds and
//! headings from the tracker, the rules that fired) and instructions that fix the answer to the
//! JSON of SPEC section 5. Groups the rules already flagged go first. Pure, apart from image
//! re-encoding.

use std::collections::BTreeMap;
use std::fmt::Write;

use base64::Engine;
use serde_json::{Value, json};
use vision::Detection;
use vision::scene::{Group, RiskLevel, SceneFrame};

use imaging::{EncodeError, GroupCrop, JPEG_QUALITY, decode_rgb, downscale, encode_jpeg};

/// Most group crops in one request (SPEC section 5).
pub const MAX_GROUPS: usize = 4;
/// Pixels of one vision token of the Qwen-VL family (28 x 28).
pub const PIXELS_PER_TOKEN: u64 = 28 * 28;

/// The instructions: the answer's schema and the levels.
pub const INSTRUCTIONS: &str = "You are a traffic-safety analyst looking at crops of a road \
camera frame. Each image is one group of nearby road users, described in the text with the \
numbers the tracker measured (on a calibrated camera speeds in km/h, the lane and zone of each \
object, and the measures of the rules: time headway, time to collision, post-encroachment time, \
deceleration; otherwise speeds in box heights per second, about 1.5 m for a car; headings in \
degrees, 0 = right, 90 = down the image) and any rule that already fired. Judge for each group \
whether it shows dangerous driving or a dangerous situation: tailgating, unsafe lane changes or \
cut-ins, vehicles in conflict with pedestrians or cyclists, wrong-way driving, running a red \
light, sudden stops, illegal stopping, collisions. Levels: \"none\" nothing dangerous; \"low\" \
unusual but not yet dangerous; \"medium\" dangerous if it goes on, someone may have to react; \
\"high\" an immediate risk of a collision or injury. When unsure, choose the lower level. \
Answer with JSON only, no prose and no code fences, exactly: {\"hasDangerousDriving\": bool, \
\"maxRiskLevel\": \"none\"|\"low\"|\"medium\"|\"high\", \"results\": [{\"groupIndex\": int (the \
group's number in the text), \"description\": string (one sentence), \"riskLevel\": \
\"none\"|\"low\"|\"medium\"|\"high\", \"confidence\": number 0-1, \"riskTypes\": [any of \
tailgating, pedestrian_conflict, wrong_way, sudden_stop, illegal_stop, congestion, speeding, \
cut_in, red_light, unsafe_lane_change, other], \"dangerObjectCount\": int, \"triggerObjectIds\": [track ids from the text], \"ruleVerdict\": \
\"confirmed\"|\"refuted\" (only for a group where a rule fired: whether the image shows what the \
rule says)}]}. Give one result per group.";

/// How requests are built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptConfig {
    /// Model name.
    pub model: String,
    /// Vision tokens one image may use (qwen-vl-plus: 1280).
    pub max_image_tokens: u64,
    /// Most tokens of the answer.
    pub max_answer_tokens: u32,
}

/// A built request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The chat-completions body.
    pub body: Value,
    /// `groupId` of the request's group `k` (1-based) at `group_ids[k - 1]`.
    pub group_ids: Vec<u64>,
}

/// The groups to ask about, as indices into `scene.groups`: those with a rule alert first
/// (highest level first), then the largest; at most [`MAX_GROUPS`].
pub fn select_groups(scene: &SceneFrame) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scene.groups.len()).collect();
    order.sort_by_key(|&i| {
        let g = &scene.groups[i];
        (
            std::cmp::Reverse(g.level),
            std::cmp::Reverse(g.members.len()),
            g.id,
        )
    });
    order.truncate(MAX_GROUPS);
    order
}

/// The text about request group `k`.
pub fn group_summary(k: usize, group: &Group, dets: &[Detection], scene: &SceneFrame) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for &m in &group.members {
        *counts.entry(dets[m].label.as_str()).or_default() += 1;
    }
    let counts: Vec<String> = counts.iter().map(|(c, n)| format!("{n} {c}")).collect();
    let mut text = format!(
        "Group {k} (id {}): {} objects ({}), area [{:.0}, {:.0}, {:.0}, {:.0}] px.",
        group.id,
        group.members.len(),
        counts.join(", "),
        group.bbox.x1,
        group.bbox.y1,
        group.bbox.x2,
        group.bbox.y2
    );
    let mut closest: Option<(f32, f32)> = None;
    for (i, &a) in group.members.iter().enumerate() {
        for &b in &group.members[i + 1..] {
            let ((ax, ay), (bx, by)) = (dets[a].bbox.center(), dets[b].bbox.center());
            let d = (ax - bx).hypot(ay - by);
            let h = 0.5 * (dets[a].bbox.height() + dets[b].bbox.height());
            if closest.is_none_or(|(c, _)| d < c) {
                closest = Some((d, d / h.max(1.0)));
            }
        }
    }
    if let Some((d, heights)) = closest {
        let _ = write!(
            text,
            " Closest pair {d:.0} px apart ({heights:.1} box heights)."
        );
    }
    for &m in &group.members {
        let d = &dets[m];
        let name = scene.track_ids[m].map_or_else(
            || format!("{} (untracked)", d.label),
            |id| format!("{} #{id}", d.label),
        );
        let place = scene.places.get(m);
        let motion = match (
            place.and_then(|p| p.speed_kmh),
            scene.motion.get(m).copied().flatten(),
        ) {
            (Some(kmh), mv) => {
                let heading = mv.map_or_else(String::new, |mv| {
                    format!(" heading {:.0} deg", mv.heading_degrees)
                });
                format!("{kmh:.0} km/h{heading}")
            }
            (None, Some(mv)) if mv.speed >= 0.3 => format!(
                "moving {:.1} heights/s heading {:.0} deg",
                mv.speed, mv.heading_degrees
            ),
            (None, Some(_)) => "standing still".to_string(),
            (None, None) => "motion unknown".to_string(),
        };
        let _ = write!(text, " {name}: {motion}");
        if let Some(lane) = place.and_then(|p| p.lane.as_deref()) {
            let _ = write!(text, ", lane {lane}");
        }
        if let Some(zone) = place.and_then(|p| p.zone.as_deref()) {
            let _ = write!(text, ", in zone {zone}");
        }
        let _ = write!(text, ", confidence {:.2}.", d.confidence);
    }
    let fired: Vec<String> = scene
        .alerts
        .iter()
        .filter(|a| a.group.is_some_and(|(_, id)| id == group.id))
        .map(|a| {
            let measures: Vec<String> = a
                .hit
                .measures
                .iter()
                .map(|(k, v)| format!("{k} {v:.2}"))
                .collect();
            let measures = if measures.is_empty() {
                String::new()
            } else {
                format!(" [{}]", measures.join(", "))
            };
            format!(
                "{} ({}): {}{measures}",
                a.hit.kind.as_str(),
                a.hit.level.as_str(),
                a.hit.description
            )
        })
        .collect();
    if fired.is_empty() {
        text.push_str(" No rule fired.");
    } else {
        let _ = write!(text, " Rules fired: {}.", fired.join("; "));
    }
    text
}

/// The crop as JPEG within `max_pixels` (re-encoded smaller only when it is over).
pub fn fit_image(crop: &GroupCrop, max_pixels: u64) -> Result<Vec<u8>, EncodeError> {
    let pixels = u64::from(crop.width) * u64::from(crop.height);
    if pixels <= max_pixels {
        return Ok(crop.jpeg.clone());
    }
    let scale = (max_pixels as f64 / pixels as f64).sqrt();
    let width = ((f64::from(crop.width) * scale).floor() as u32).max(1);
    let height = ((f64::from(crop.height) * scale).floor() as u32).max(1);
    let picture = decode_rgb(&crop.jpeg).map_err(EncodeError)?;
    encode_jpeg(&downscale(&picture, width, height)?, JPEG_QUALITY)
}

/// The request for a frame, or `None` when it has no group with a crop.
pub fn build_request(
    cfg: &PromptConfig,
    dets: &[Detection],
    scene: &SceneFrame,
    crops: &[Option<GroupCrop>],
) -> Result<Option<Request>, EncodeError> {
    let max_pixels = cfg.max_image_tokens * PIXELS_PER_TOKEN;
    let mut images = Vec::new();
    let mut texts = Vec::new();
    let mut group_ids = Vec::new();
    for i in select_groups(scene) {
        let Some(crop) = crops.get(i).and_then(Option::as_ref) else {
            continue;
        };
        let group = &scene.groups[i];
        let k = group_ids.len() + 1;
        group_ids.push(group.id);
        texts.push(group_summary(k, group, dets, scene));
        let jpeg = fit_image(crop, max_pixels)?;
        images.push(base64::engine::general_purpose::STANDARD.encode(jpeg));
    }
    if group_ids.is_empty() {
        return Ok(None);
    }
    let flagged = scene.max_level > RiskLevel::None;
    Ok(Some(Request {
        body: chat_body(cfg, flagged, &texts, &images),
        group_ids,
    }))
}

/// The chat-completions body for group summaries `texts` and their JPEG crops in base64
/// (`images`, same order); `flagged` when the rules saw danger.
pub fn chat_body(cfg: &PromptConfig, flagged: bool, texts: &[String], images: &[String]) -> Value {
    let intro = format!(
        "{} group image(s) follow, in order.{} ",
        images.len(),
        if flagged {
            " The rules flagged danger in this frame."
        } else {
            ""
        }
    );
    let mut content = vec![json!({"type": "text", "text": intro + &texts.join("\n")})];
    content.extend(images.iter().map(|b64| {
        json!({
            "type": "image_url",
            "image_url": {"url": format!("data:image/jpeg;base64,{b64}")},
        })
    }));
    json!({
        "model": cfg.model,
        "messages": [
            {"role": "system", "content": INSTRUCTIONS},
            {"role": "user", "content": content},
        ],
        "temperature": 0.1,
        "max_tokens": cfg.max_answer_tokens,
        "stream": false,
    })
}
