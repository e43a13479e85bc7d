//! Well-known binary (WKB) for the three geometry types spatialdata's shapes accept: Point (circles), Polygon and
//! MultiPolygon. Encoding is little endian, 2-D, as geopandas writes it; decoding accepts either byte order.

use super::shapes::Geometry;

const POINT: u32 = 1;
const POLYGON: u32 = 3;
const MULTIPOLYGON: u32 = 6;

/// Appends the WKB of `g` to `out`.
pub fn encode_into(g: &Geometry, out: &mut Vec<u8>) {
    match g {
        Geometry::Point(p) => {
            header(out, POINT);
            coord(out, p);
        }
        Geometry::Polygon(rings) => {
            header(out, POLYGON);
            polygon_body(out, rings);
        }
        Geometry::MultiPolygon(polys) => {
            header(out, MULTIPOLYGON);
            out.extend_from_slice(&(polys.len() as u32).to_le_bytes());
            for rings in polys {
                header(out, POLYGON);
                polygon_body(out, rings);
            }
        }
    }
}

/// The WKB of `g`.
pub fn encode(g: &Geometry) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(g, &mut out);
    out
}

fn header(out: &mut Vec<u8>, ty: u32) {
    out.push(1);
    out.extend_from_slice(&ty.to_le_bytes());
}

fn coord(out: &mut Vec<u8>, p: &[f64; 2]) {
    out.extend_from_slice(&p[0].to_le_bytes());
    out.extend_from_slice(&p[1].to_le_bytes());
}

fn polygon_body(out: &mut Vec<u8>, rings: &[Vec<[f64; 2]>]) {
    out.extend_from_slice(&(rings.len() as u32).to_le_bytes());
    for ring in rings {
        out.extend_from_slice(&(ring.len() as u32).to_le_bytes());
        for p in ring {
            coord(out, p);
        }
    }
}

/// The name of a WKB geometry type code (for messages), e.g. `LineString` for 2.
pub fn type_name(code: u32) -> String {
    let base = match code % 1000 {
        1 => "Point",
        2 => "LineString",
        3 => "Polygon",
        4 => "MultiPoint",
        5 => "MultiLineString",
        6 => "MultiPolygon",
        7 => "GeometryCollection",
        _ => return format!("unknown WKB type {code}"),
    };
    match code / 1000 {
        0 => base.to_string(),
        1 => format!("{base} Z"),
        2 => format!("{base} M"),
        3 => format!("{base} ZM"),
        _ => format!("unknown WKB type {code}"),
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    little: bool,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let end = self.pos + N;
        let s = self.buf.get(self.pos..end).ok_or_else(|| {
            format!("the WKB is truncated ({} bytes, needed at least {end})", self.buf.len())
        })?;
        self.pos = end;
        Ok(s.try_into().expect("slice of length N"))
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take::<4>()?;
        Ok(if self.little { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) })
    }
    fn f64(&mut self) -> Result<f64, String> {
        let b = self.take::<8>()?;
        Ok(if self.little { f64::from_le_bytes(b) } else { f64::from_be_bytes(b) })
    }
    fn header(&mut self) -> Result<u32, String> {
        let [order] = self.take::<1>()?;
        self.little = match order {
            0 => false,
            1 => true,
            b => return Err(format!("invalid WKB byte-order marker {b}")),
        };
        self.u32()
    }
    fn count(&mut self, item_bytes: usize) -> Result<usize, String> {
        let n = self.u32()? as usize;
        // A count larger than the remaining bytes can hold is corrupt; refuse before allocating.
        if n.saturating_mul(item_bytes) > self.buf.len().saturating_sub(self.pos) {
            return Err(format!("the WKB declares {n} items but is only {} bytes long", self.buf.len()));
        }
        Ok(n)
    }
    fn point(&mut self) -> Result<[f64; 2], String> {
        Ok([self.f64()?, self.f64()?])
    }
    fn polygon_body(&mut self) -> Result<Vec<Vec<[f64; 2]>>, String> {
        let n_rings = self.count(4)?;
        let mut rings = Vec::with_capacity(n_rings);
        for _ in 0..n_rings {
            let n = self.count(16)?;
            let mut ring = Vec::with_capacity(n);
            for _ in 0..n {
                ring.push(self.point()?);
            }
            rings.push(ring);
        }
        Ok(rings)
    }
}

/// Decodes one WKB geometry. Types other than 2-D Point, Polygon and MultiPolygon are refused with a message that
/// names the type found.
pub fn decode(buf: &[u8]) -> Result<Geometry, String> {
    let mut r = Reader { buf, pos: 0, little: true };
    let ty = r.header()?;
    let g = match ty {
        POINT => Geometry::Point(r.point()?),
        POLYGON => Geometry::Polygon(r.polygon_body()?),
        MULTIPOLYGON => {
            let n = r.count(9)?;
            let mut polys = Vec::with_capacity(n);
            for _ in 0..n {
                let inner = r.header()?;
                if inner != POLYGON {
                    return Err(format!("a MultiPolygon holds a {} instead of a Polygon", type_name(inner)));
                }
                polys.push(r.polygon_body()?);
            }
            Geometry::MultiPolygon(polys)
        }
        other => {
            return Err(format!(
                "geometry type {} is not supported: spatialdata shapes are Point (circles, with a radius), Polygon \
                 or MultiPolygon in 2-D",
                type_name(other)
            ))
        }
    };
    if r.pos != buf.len() {
        return Err(format!("{} trailing bytes after the WKB geometry", buf.len() - r.pos));
    }
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_type() {
        let sq = vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]];
        for g in [
            Geometry::Point([1.5, -2.0]),
            Geometry::Polygon(vec![sq.clone()]),
            Geometry::MultiPolygon(vec![vec![sq.clone()], vec![sq.clone(), sq.clone()]]),
        ] {
            assert_eq!(decode(&encode(&g)).unwrap(), g);
        }
    }

    #[test]
    fn matches_geopandas_bytes() {
        // shapely.Point(1, 2).wkb
        let want = b"\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\xf0?\x00\x00\x00\x00\x00\x00\x00@";
        assert_eq!(encode(&Geometry::Point([1.0, 2.0])), want.to_vec());
    }

    #[test]
    fn decodes_big_endian_and_refuses_others() {
        let mut be = vec![0u8];
        be.extend_from_slice(&1u32.to_be_bytes());
        be.extend_from_slice(&3.0f64.to_be_bytes());
        be.extend_from_slice(&4.0f64.to_be_bytes());
        assert_eq!(decode(&be).unwrap(), Geometry::Point([3.0, 4.0]));
        let mut line = vec![1u8];
        line.extend_from_slice(&2u32.to_le_bytes());
        line.extend_from_slice(&0u32.to_le_bytes());
        assert!(decode(&line).unwrap_err().contains("LineString"));
        assert!(decode(&[1, 1, 0]).unwrap_err().contains("truncated"));
        let mut huge = vec![1u8];
        huge.extend_from_slice(&3u32.to_le_bytes());
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&huge).is_err());
    }
}
