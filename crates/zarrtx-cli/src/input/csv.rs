//! A small CSV reader (RFC 4180: comma separated, a header row, `"`-quoted fields with `""` escapes, LF or CRLF
//! line ends) that infers one Arrow type per column: int64 when every non-empty cell is an integer, float64 when
//! every non-empty cell is a number (`nan`/`inf` included; also columns without any value), else utf8. Empty
//! cells are nulls.

use crate::cli_error::{CliError, CliResult};
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use std::path::Path;
use std::sync::Arc;

/// Splits CSV text into records of fields.
pub fn parse_records(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut quoted = false;
    let mut line = 1usize;
    let mut chars = text.trim_start_matches('\u{feff}').chars().peekable();
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() && !quoted => {
                in_quotes = true;
                quoted = true;
            }
            '"' => return Err(format!("line {line}: a quote inside an unquoted field; quote the whole field")),
            ',' => {
                record.push(std::mem::take(&mut field));
                quoted = false;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                record.push(std::mem::take(&mut field));
                quoted = false;
                if !(record.len() == 1 && record[0].is_empty()) {
                    records.push(std::mem::take(&mut record));
                } else {
                    record.clear();
                }
                line += 1;
            }
            _ => {
                if quoted {
                    return Err(format!("line {line}: text after a closing quote"));
                }
                field.push(c)
            }
        }
    }
    if in_quotes {
        return Err(format!("line {line}: a quoted field is not closed"));
    }
    if !field.is_empty() || !record.is_empty() || quoted {
        record.push(field);
        records.push(record);
    }
    Ok(records)
}

fn column(values: &[&str]) -> ArrayRef {
    let non_empty = || values.iter().filter(|v| !v.trim().is_empty());
    fn cell<'a>(v: &&'a str) -> Option<&'a str> {
        let t = v.trim();
        (!t.is_empty()).then_some(t)
    }
    if non_empty().all(|v| v.trim().parse::<i64>().is_ok()) && non_empty().next().is_some() {
        return Arc::new(values.iter().map(|v| cell(v).map(|s| s.parse::<i64>().unwrap())).collect::<Int64Array>());
    }
    // Like pandas: a column without any value (or a file without rows) reads as float64.
    if non_empty().all(|v| v.trim().parse::<f64>().is_ok()) {
        return Arc::new(values.iter().map(|v| cell(v).map(|s| s.parse::<f64>().unwrap())).collect::<Float64Array>());
    }
    Arc::new(values.iter().map(|v| (!v.is_empty()).then_some(*v)).collect::<StringArray>())
}

/// Reads a CSV file into one record batch with inferred column types.
pub fn read_csv(path: &Path) -> CliResult<RecordBatch> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))?;
    parse_csv(&text).map_err(|e| CliError::usage(format!("{}: {e}", path.display())))
}

/// Parses CSV text (see the module documentation).
pub fn parse_csv(text: &str) -> Result<RecordBatch, String> {
    let records = parse_records(text)?;
    let (header, rows) = records.split_first().ok_or("the file is empty; it needs a header row")?;
    let mut seen = std::collections::HashSet::new();
    for h in header {
        if h.is_empty() {
            return Err("the header has an empty column name".into());
        }
        if !seen.insert(h) {
            return Err(format!("column '{h}' appears twice in the header"));
        }
    }
    for (i, r) in rows.iter().enumerate() {
        if r.len() != header.len() {
            return Err(format!("row {} has {} fields but the header has {}", i + 1, r.len(), header.len()));
        }
    }
    let columns: Vec<(String, ArrayRef)> = header
        .iter()
        .enumerate()
        .map(|(k, h)| {
            let values: Vec<&str> = rows.iter().map(|r| r[k].as_str()).collect();
            (h.clone(), column(&values))
        })
        .collect();
    RecordBatch::try_from_iter(columns).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::DataType;

    #[test]
    fn parses_quotes_types_and_nulls() {
        let b = parse_csv("x,y,gene,note\r\n1,2.5,\"a,b\",\n3,-1,\"say \"\"hi\"\"\",x\n\n").unwrap();
        assert_eq!(b.num_rows(), 2);
        let types: Vec<DataType> = b.schema().fields().iter().map(|f| f.data_type().clone()).collect();
        assert_eq!(types, [DataType::Int64, DataType::Float64, DataType::Utf8, DataType::Utf8]);
        let gene = b.column(2).as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!((gene.value(0), gene.value(1)), ("a,b", "say \"hi\""));
        assert_eq!(b.column(3).null_count(), 1);
    }

    #[test]
    fn refuses_malformed_files() {
        for bad in ["", "x,y\n1\n", "x,x\n1,2\n", "x,y\n\"1,2\n", "x,\n1,2\n", "x,y\n1\"a,2\n"] {
            assert!(parse_csv(bad).is_err(), "{bad:?}");
        }
    }
}
