//! Editing the TOML config file in place: a changed key is replaced where it stands, keeping the
//! comments around it and how it is written; an unchanged one is not touched at all.

pub(super) fn value(v: impl Into<toml_edit::Value>) -> toml_edit::Item {
    toml_edit::value(v)
}

/// Sets (or, with `None`, removes) a key. A key that already holds the same data is left
/// alone, comments inside it included; a changed one is replaced in place, keeping the
/// comment lines above it, a comment after its value, and how it is written (inline, dotted,
/// where its `[table]` sits).
pub(super) fn set(table: &mut dyn toml_edit::TableLike, key: &str, item: Option<toml_edit::Item>) {
    use toml_edit::Item;
    let Some(mut item) = item else {
        remove_keeping_comments(table, key);
        return;
    };
    let Some(old) = table.get_mut(key) else {
        table.insert(key, item);
        return;
    };
    if old.is_value() {
        item.make_value();
    }
    if same_data(old, &item) {
        return;
    }
    match (&*old, &mut item) {
        (Item::Value(before), Item::Value(after)) => {
            *after.decor_mut() = before.decor().clone();
        }
        (Item::Table(before), Item::Table(after)) => {
            *after.decor_mut() = before.decor().clone();
            after.set_dotted(before.is_dotted());
            if let Some(position) = before.position() {
                after.set_position(position);
            }
        }
        (Item::ArrayOfTables(before), Item::ArrayOfTables(after)) => {
            let old_tables: Vec<_> = before.iter().collect();
            for (i, table) in after.iter_mut().enumerate() {
                let Some(model) = old_tables.get(i).or(old_tables.last()) else {
                    break;
                };
                if let Some(position) = model.position() {
                    table.set_position(position);
                }
                if i < old_tables.len() {
                    *table.decor_mut() = model.decor().clone();
                }
            }
        }
        _ => {}
    }
    *old = item;
}

/// Removes a key, handing the comment lines above it to the key (or `[table]`) that follows,
/// so clearing a setting does not delete a comment that was about the file or the section.
fn remove_keeping_comments(table: &mut dyn toml_edit::TableLike, key: &str) {
    let comments = table
        .key_decor(key)
        .and_then(|d| d.prefix())
        .and_then(|p| p.as_str())
        .filter(|p| p.contains('#'))
        .map(str::to_owned);
    let next = table
        .iter()
        .map(|(k, _)| k.to_owned())
        .skip_while(|k| k != key)
        .nth(1);
    table.remove(key);
    let (Some(comments), Some(next)) = (comments, next) else {
        return;
    };
    let decor = match table.get_mut(&next) {
        Some(toml_edit::Item::Table(t)) => Some(t.decor_mut()),
        Some(toml_edit::Item::ArrayOfTables(a)) => a.iter_mut().next().map(|t| t.decor_mut()),
        Some(_) => table.key_decor_mut(&next),
        None => None,
    };
    if let Some(decor) = decor {
        let after = decor
            .prefix()
            .and_then(|p| p.as_str())
            .unwrap_or_default()
            .to_owned();
        decor.set_prefix(format!("{comments}{after}"));
    }
}

/// Whether two items hold the same data, whatever their comments and layout.
fn same_data(a: &toml_edit::Item, b: &toml_edit::Item) -> bool {
    use toml_edit::Item;
    if let (Some(x), Some(y)) = (a.as_table_like(), b.as_table_like()) {
        return same_table(x, y);
    }
    match (a, b) {
        (Item::ArrayOfTables(x), Item::ArrayOfTables(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(t, u)| same_table(t, u))
        }
        (Item::Value(x), Item::Value(y)) => same_value(x, y),
        _ => false,
    }
}

fn same_table(x: &dyn toml_edit::TableLike, y: &dyn toml_edit::TableLike) -> bool {
    x.len() == y.len()
        && x.iter()
            .all(|(k, v)| y.get(k).is_some_and(|w| same_data(v, w)))
}

fn same_value(x: &toml_edit::Value, y: &toml_edit::Value) -> bool {
    use toml_edit::Value;
    match (x, y) {
        (Value::String(a), Value::String(b)) => a.value() == b.value(),
        (Value::Integer(a), Value::Integer(b)) => a.value() == b.value(),
        (Value::Float(a), Value::Float(b)) => a.value() == b.value(),
        (Value::Boolean(a), Value::Boolean(b)) => a.value() == b.value(),
        (Value::Datetime(a), Value::Datetime(b)) => a.value() == b.value(),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b.iter()).all(|(p, q)| same_value(p, q))
        }
        (Value::InlineTable(a), Value::InlineTable(b)) => same_table(a, b),
        _ => false,
    }
}

/// Sets (or removes) a key of a `[section]` (or an inline `section = { … }`), creating the
/// section when it is missing or is not a table.
pub(super) fn set_in(
    root: &mut toml_edit::Table,
    section: &str,
    key: &str,
    item: Option<toml_edit::Item>,
) {
    let entry = root
        .entry(section)
        .or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()));
    if !entry.is_table_like() {
        *entry = toml_edit::Item::Table(toml_edit::Table::new());
    }
    if let Some(table) = entry.as_table_like_mut() {
        set(table, key, item);
    }
}
