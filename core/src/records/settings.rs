//! The workspace settings document: taxonomies with translated labels, and device names.
//!
//! Entries and labels live in flat maps keyed `taxonomy/key` and `taxonomy/key/lang`, so two
//! coordinators adding the same entry or translating different labels offline merge per label
//! instead of one nested map replacing the other.

use std::collections::BTreeMap;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT, ReadDoc};

use super::*;
use crate::model::{Label, Settings, SettingsEdit, Taxonomy, TaxonomyEntry};
use crate::validate;

const K_NAME: &str = "name";
const K_ENTRIES: &str = "entries";
const K_LABELS: &str = "labels";
const K_ARCHIVED: &str = "archived";
pub(crate) const K_DEVICES: &str = "devices";

/// The taxonomies every workspace has.
pub const TAXONOMIES: [&str; 8] = [
    "visit_types",
    "risk_indicators",
    "referral_kinds",
    "referral_statuses",
    "workshop_topics",
    "audiences",
    "age_bands",
    "genders",
];

/// Default entries: (taxonomy, key, English label, Spanish label).
const SEED: &[(&str, &str, &str, &str)] = &[
    (
        "visit_types",
        "street_outreach",
        "Street outreach",
        "Alcance en la calle",
    ),
    (
        "visit_types",
        "worksite_visit",
        "Worksite visit",
        "Visita a lugar de trabajo",
    ),
    (
        "visit_types",
        "home_visit",
        "Home visit",
        "Visita domiciliaria",
    ),
    (
        "visit_types",
        "shelter_visit",
        "Shelter visit",
        "Visita a albergue",
    ),
    (
        "visit_types",
        "transit_point",
        "Transit point (station, border crossing)",
        "Punto de tránsito (estación, frontera)",
    ),
    (
        "visit_types",
        "online_outreach",
        "Online outreach",
        "Alcance en línea",
    ),
    ("visit_types", "follow_up", "Follow-up", "Seguimiento"),
    (
        "risk_indicators",
        "abuse_of_vulnerability",
        "Abuse of vulnerability",
        "Abuso de vulnerabilidad",
    ),
    (
        "risk_indicators",
        "deception",
        "Deception (about the job, pay or conditions)",
        "Engaño (sobre el trabajo, el pago o las condiciones)",
    ),
    (
        "risk_indicators",
        "restriction_of_movement",
        "Restriction of movement",
        "Restricción de movimiento",
    ),
    ("risk_indicators", "isolation", "Isolation", "Aislamiento"),
    (
        "risk_indicators",
        "physical_sexual_violence",
        "Physical or sexual violence",
        "Violencia física o sexual",
    ),
    (
        "risk_indicators",
        "intimidation_threats",
        "Intimidation and threats",
        "Intimidación y amenazas",
    ),
    (
        "risk_indicators",
        "retention_of_documents",
        "Retention of identity documents",
        "Retención de documentos de identidad",
    ),
    (
        "risk_indicators",
        "withholding_of_wages",
        "Withholding of wages",
        "Retención de salarios",
    ),
    (
        "risk_indicators",
        "debt_bondage",
        "Debt bondage",
        "Servidumbre por deudas",
    ),
    (
        "risk_indicators",
        "abusive_conditions",
        "Abusive working and living conditions",
        "Condiciones abusivas de trabajo y de vida",
    ),
    (
        "risk_indicators",
        "excessive_overtime",
        "Excessive overtime",
        "Horas extraordinarias excesivas",
    ),
    (
        "risk_indicators",
        "minor_present",
        "A child appears to be working or exploited",
        "Un menor parece trabajar o ser explotado",
    ),
    (
        "risk_indicators",
        "signs_of_coercion",
        "Signs of coercion (scripted answers, someone speaks for them)",
        "Señales de coacción (respuestas ensayadas, otra persona habla por ellos)",
    ),
    (
        "risk_indicators",
        "recruitment_fees",
        "Paid recruitment fees",
        "Pagó tasas de contratación",
    ),
    ("referral_kinds", "shelter", "Shelter", "Albergue"),
    (
        "referral_kinds",
        "medical",
        "Medical care",
        "Atención médica",
    ),
    (
        "referral_kinds",
        "psychosocial",
        "Psychosocial support",
        "Apoyo psicosocial",
    ),
    (
        "referral_kinds",
        "legal_aid",
        "Legal aid",
        "Asistencia jurídica",
    ),
    (
        "referral_kinds",
        "law_enforcement",
        "Law enforcement",
        "Fuerzas del orden",
    ),
    ("referral_kinds", "hotline", "Hotline", "Línea de ayuda"),
    (
        "referral_kinds",
        "labour_inspection",
        "Labour inspection",
        "Inspección de trabajo",
    ),
    (
        "referral_kinds",
        "consular",
        "Embassy or consulate",
        "Embajada o consulado",
    ),
    (
        "referral_kinds",
        "child_protection",
        "Child protection",
        "Protección de la infancia",
    ),
    (
        "referral_kinds",
        "livelihood",
        "Livelihood (training, job placement)",
        "Medios de vida (formación, empleo)",
    ),
    (
        "referral_kinds",
        "return_reintegration",
        "Return and reintegration",
        "Retorno y reintegración",
    ),
    ("referral_statuses", "suggested", "Suggested", "Sugerida"),
    ("referral_statuses", "made", "Made", "Realizada"),
    ("referral_statuses", "accepted", "Accepted", "Aceptada"),
    ("referral_statuses", "completed", "Completed", "Completada"),
    ("referral_statuses", "declined", "Declined", "Rechazada"),
    (
        "workshop_topics",
        "recognising_trafficking",
        "Recognising trafficking",
        "Reconocer la trata",
    ),
    (
        "workshop_topics",
        "safe_migration",
        "Safe migration",
        "Migración segura",
    ),
    (
        "workshop_topics",
        "safe_recruitment",
        "Safe recruitment (checking job offers)",
        "Contratación segura (verificar ofertas de empleo)",
    ),
    (
        "workshop_topics",
        "online_safety",
        "Online safety (grooming, fake adverts)",
        "Seguridad en línea (captación, anuncios falsos)",
    ),
    (
        "workshop_topics",
        "workers_rights",
        "Workers' rights",
        "Derechos laborales",
    ),
    (
        "workshop_topics",
        "how_to_report",
        "How to report (hotlines, helplines)",
        "Cómo denunciar (líneas de ayuda)",
    ),
    (
        "workshop_topics",
        "survivor_support",
        "Survivor support",
        "Apoyo a sobrevivientes",
    ),
    ("audiences", "students", "Students", "Estudiantes"),
    ("audiences", "parents", "Parents", "Madres y padres"),
    ("audiences", "teachers", "Teachers", "Docentes"),
    (
        "audiences",
        "community_leaders",
        "Community leaders",
        "Líderes comunitarios",
    ),
    (
        "audiences",
        "migrant_workers",
        "Migrant workers",
        "Trabajadores migrantes",
    ),
    (
        "audiences",
        "worksite_workers",
        "Worksite workers",
        "Trabajadores en el lugar de trabajo",
    ),
    (
        "audiences",
        "health_workers",
        "Health workers",
        "Personal de salud",
    ),
    (
        "audiences",
        "police_officials",
        "Police and officials",
        "Policía y funcionarios",
    ),
    (
        "audiences",
        "faith_groups",
        "Faith groups",
        "Grupos religiosos",
    ),
    ("age_bands", "under_12", "Under 12", "Menores de 12"),
    ("age_bands", "12_17", "12 to 17", "De 12 a 17"),
    ("age_bands", "18_24", "18 to 24", "De 18 a 24"),
    ("age_bands", "25_59", "25 to 59", "De 25 a 59"),
    ("age_bands", "60_plus", "60 and over", "60 y más"),
    ("age_bands", "unknown", "Unknown", "Desconocida"),
    ("genders", "female", "Female", "Mujer"),
    ("genders", "male", "Male", "Hombre"),
    ("genders", "another_gender", "Another gender", "Otro género"),
    ("genders", "not_recorded", "Not recorded", "No registrado"),
];

/// Writes a new settings document with the default taxonomies.
pub(crate) fn create(
    doc: &mut AutoCommit,
    workspace: &str,
    name: &str,
    device: (&str, &str),
    now: i64,
) -> Result<()> {
    put_header(doc, RecordKind::Settings, workspace, now)?;
    doc.put(&ROOT, K_NAME, name)?;
    let entries = doc.put_object(&ROOT, K_ENTRIES, ObjType::Map)?;
    let labels = doc.put_object(&ROOT, K_LABELS, ObjType::Map)?;
    doc.put_object(&ROOT, K_ARCHIVED, ObjType::Map)?;
    let devices = doc.put_object(&ROOT, K_DEVICES, ObjType::Map)?;
    let mut order: BTreeMap<&str, i64> = BTreeMap::new();
    for (tax, key, en, es) in SEED {
        let n = order.entry(tax).or_insert(0);
        *n += 1;
        doc.put(&entries, format!("{tax}/{key}"), *n)?;
        doc.put(&labels, format!("{tax}/{key}/en"), *en)?;
        doc.put(&labels, format!("{tax}/{key}/es"), *es)?;
    }
    doc.put(&devices, device.0, device.1)?;
    Ok(())
}

fn validate_taxonomy(t: &str) -> Result<()> {
    if TAXONOMIES.contains(&t) {
        Ok(())
    } else {
        Err(Error::invalid(
            "taxonomy",
            format!("must be one of {}", TAXONOMIES.join(", ")),
        ))
    }
}

fn validate_lang(l: &str) -> Result<()> {
    if l.is_empty() || l.len() > 35 || !l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(Error::invalid(
            "lang",
            "must be a language tag such as en or pt-BR",
        ));
    }
    Ok(())
}

/// Checks one settings edit before anything is written.
pub(crate) fn validate_edit(e: &SettingsEdit) -> Result<()> {
    match e {
        SettingsEdit::Rename(n) => validate::required_line("name", n),
        SettingsEdit::AddEntry {
            taxonomy,
            key,
            labels,
        } => {
            validate_taxonomy(taxonomy)?;
            validate::key("key", key)?;
            labels.iter().try_for_each(|l| {
                validate_lang(&l.lang)?;
                validate::required_line("label", &l.text)
            })
        }
        SettingsEdit::SetLabel {
            taxonomy,
            key,
            lang,
            text,
        } => {
            validate_taxonomy(taxonomy)?;
            validate::key("key", key)?;
            validate_lang(lang)?;
            validate::required_line("label", text)
        }
        SettingsEdit::Archive { taxonomy, key, .. } => {
            validate_taxonomy(taxonomy)?;
            validate::key("key", key)
        }
    }
}

fn map(doc: &AutoCommit, key: &str) -> Result<automerge::ObjId> {
    get_obj(doc, &ROOT, key, ObjType::Map)
        .ok_or_else(|| Error::corrupt(format!("settings have no {key} map")))
}

/// Applies one settings edit.
pub(crate) fn apply(doc: &mut AutoCommit, e: &SettingsEdit) -> Result<()> {
    match e {
        SettingsEdit::Rename(n) => doc.put(&ROOT, K_NAME, n.as_str())?,
        SettingsEdit::AddEntry {
            taxonomy,
            key,
            labels,
        } => {
            let entries = map(doc, K_ENTRIES)?;
            let id = format!("{taxonomy}/{key}");
            if doc.get(&entries, id.as_str())?.is_none() {
                let last = doc
                    .keys(&entries)
                    .filter(|k| k.starts_with(&format!("{taxonomy}/")))
                    .filter_map(|k| get_i64(doc, &entries, &k))
                    .max()
                    .unwrap_or(0);
                doc.put(&entries, id.as_str(), last + 1)?;
            }
            let archived = map(doc, K_ARCHIVED)?;
            if doc.get(&archived, id.as_str())?.is_some() {
                doc.put(&archived, id.as_str(), false)?;
            }
            let lm = map(doc, K_LABELS)?;
            for l in labels {
                doc.put(&lm, format!("{id}/{}", l.lang), l.text.as_str())?;
            }
        }
        SettingsEdit::SetLabel {
            taxonomy,
            key,
            lang,
            text,
        } => {
            let entries = map(doc, K_ENTRIES)?;
            if doc.get(&entries, format!("{taxonomy}/{key}"))?.is_none() {
                return Err(Error::not_found(format!("{taxonomy} entry {key}")));
            }
            let lm = map(doc, K_LABELS)?;
            doc.put(&lm, format!("{taxonomy}/{key}/{lang}"), text.as_str())?;
        }
        SettingsEdit::Archive {
            taxonomy,
            key,
            archived,
        } => {
            let entries = map(doc, K_ENTRIES)?;
            if doc.get(&entries, format!("{taxonomy}/{key}"))?.is_none() {
                return Err(Error::not_found(format!("{taxonomy} entry {key}")));
            }
            let am = map(doc, K_ARCHIVED)?;
            doc.put(&am, format!("{taxonomy}/{key}"), *archived)?;
        }
    }
    Ok(())
}

/// Records a device's display name.
pub(crate) fn set_device_name(doc: &mut AutoCommit, actor: &str, name: &str) -> Result<()> {
    let devices = map(doc, K_DEVICES)?;
    doc.put(&devices, actor, name)?;
    Ok(())
}

/// The display name of each known device actor.
pub(crate) fn device_names(doc: &AutoCommit) -> BTreeMap<String, String> {
    get_obj(doc, &ROOT, K_DEVICES, ObjType::Map)
        .map(|d| {
            doc.keys(&d)
                .filter_map(|k| Some((k.clone(), get_str(doc, &d, &k)?)))
                .collect()
        })
        .unwrap_or_default()
}

/// The workspace name.
pub(crate) fn name(doc: &AutoCommit) -> String {
    get_str(doc, &ROOT, K_NAME).unwrap_or_default()
}

/// Reads a settings document.
pub(crate) fn read(doc: &AutoCommit, h: &Header) -> Settings {
    let mut taxonomies: BTreeMap<String, Vec<TaxonomyEntry>> = TAXONOMIES
        .iter()
        .map(|t| (t.to_string(), Vec::new()))
        .collect();
    let entries = get_obj(doc, &ROOT, K_ENTRIES, ObjType::Map);
    let labels = get_obj(doc, &ROOT, K_LABELS, ObjType::Map);
    let archived = get_obj(doc, &ROOT, K_ARCHIVED, ObjType::Map);
    let mut all_labels: BTreeMap<String, Vec<Label>> = BTreeMap::new();
    if let Some(lm) = &labels {
        for k in doc.keys(lm) {
            if let (Some((entry, lang)), Some(text)) = (k.rsplit_once('/'), get_str(doc, lm, &k)) {
                all_labels
                    .entry(entry.to_string())
                    .or_default()
                    .push(Label {
                        lang: lang.to_string(),
                        text,
                    });
            }
        }
    }
    if let Some(em) = &entries {
        for k in doc.keys(em) {
            let Some((tax, key)) = k.split_once('/') else {
                continue;
            };
            let entry = TaxonomyEntry {
                key: key.to_string(),
                labels: all_labels.remove(&k).unwrap_or_default(),
                archived: archived
                    .as_ref()
                    .and_then(|am| get_bool(doc, am, &k))
                    .unwrap_or(false),
                order: get_i64(doc, em, &k).unwrap_or(0),
            };
            taxonomies.entry(tax.to_string()).or_default().push(entry);
        }
    }
    let mut devices: Vec<(String, String)> = device_names(doc).into_iter().collect();
    devices.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
    Settings {
        workspace_id: h.workspace.clone(),
        name: name(doc),
        taxonomies: taxonomies
            .into_iter()
            .map(|(name, mut entries)| {
                entries.sort_by(|a, b| (a.order, &a.key).cmp(&(b.order, &b.key)));
                Taxonomy { name, entries }
            })
            .collect(),
        devices,
    }
}
