//! The Billing page's usage chart: completed tasks per day as bars, the amount per day as a
//! line on its own scale, in an inline SVG (no JavaScript, scales to a phone's width). The
//! site's CSP forbids inline `style`, so only presentation attributes are used.

use tessera_core::money::Currency;

use super::{date, grouped, money, DayUsage};

const WIDTH: i64 = 720;
const HEIGHT: i64 = 220;
const LEFT: i64 = 8;
const RIGHT: i64 = 8;
const TOP: i64 = 16;
const BOTTOM: i64 = 28;

/// XML-escapes text and attribute values.
fn escape(raw: &str) -> String {
    raw.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The chart of `days` (one entry per day, oldest first; zero days included).
pub fn usage_chart_svg(days: &[DayUsage], currency: Currency) -> String {
    let total_tasks: i64 = days.iter().map(|d| d.completed_tasks).sum();
    let total_amount: i64 = days.iter().map(|d| d.amount).sum();
    let range = match (days.first(), days.last()) {
        (Some(first), Some(last)) => {
            format!("{} to {}", date(first.day_start), date(last.day_start))
        }
        _ => "no days".to_owned(),
    };
    let summary = format!(
        "Completed live tasks and amount per day, {range}: {} tasks, {}",
        grouped(total_tasks),
        money(total_amount, currency)
    );
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"100%\" \
         role=\"img\" aria-labelledby=\"usage-chart-title usage-chart-desc\">\
         <title id=\"usage-chart-title\">Usage per day</title>\
         <desc id=\"usage-chart-desc\">{}</desc>",
        escape(&summary)
    );
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let base = TOP + plot_h;
    svg.push_str(&format!(
        "<line x1=\"{LEFT}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\" stroke=\"#9aa4b5\" stroke-width=\"1\"/>",
        WIDTH - RIGHT
    ));
    let n = i64::try_from(days.len()).unwrap_or(0);
    if n == 0 || total_tasks == 0 {
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"14\" fill=\"#5b6577\">No completed live tasks in this range</text>",
            WIDTH / 2,
            TOP + plot_h / 2
        ));
    }
    if n > 0 {
        let max_tasks = days
            .iter()
            .map(|d| d.completed_tasks)
            .max()
            .unwrap_or(0)
            .max(1);
        let max_amount = days.iter().map(|d| d.amount).max().unwrap_or(0).max(1);
        let slot = plot_w as f64 / n as f64;
        let bar = (slot * 0.7).max(1.0);
        let mut points = Vec::with_capacity(days.len());
        for (i, day) in days.iter().enumerate() {
            let x = LEFT as f64 + slot * i as f64;
            let h = plot_h as f64 * day.completed_tasks.max(0) as f64 / max_tasks as f64;
            let tip = format!(
                "{}: {} tasks, {}",
                date(day.day_start),
                grouped(day.completed_tasks),
                money(day.amount, currency)
            );
            svg.push_str(&format!(
                "<rect class=\"bar\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#4a6cf7\"><title>{}</title></rect>",
                x + (slot - bar) / 2.0,
                base as f64 - h,
                bar,
                h,
                escape(&tip)
            ));
            let y = base as f64 - plot_h as f64 * day.amount.max(0) as f64 / max_amount as f64;
            points.push(format!("{:.1},{:.1}", x + slot / 2.0, y));
        }
        if total_amount > 0 {
            svg.push_str(&format!(
                "<polyline points=\"{}\" fill=\"none\" stroke=\"#e07a1f\" stroke-width=\"2\"/>",
                points.join(" ")
            ));
        }
        let label = |x: i64, anchor: &str, text: &str| {
            format!(
                "<text x=\"{x}\" y=\"{}\" text-anchor=\"{anchor}\" font-size=\"12\" fill=\"#5b6577\">{}</text>",
                HEIGHT - 8,
                escape(text)
            )
        };
        if let (Some(first), Some(last)) = (days.first(), days.last()) {
            svg.push_str(&label(LEFT, "start", &date(first.day_start)));
            svg.push_str(&label(WIDTH - RIGHT, "end", &date(last.day_start)));
        }
        svg.push_str(&format!(
            "<text x=\"{LEFT}\" y=\"12\" font-size=\"12\" fill=\"#4a6cf7\">max {} tasks/day</text>\
             <text x=\"{}\" y=\"12\" text-anchor=\"end\" font-size=\"12\" fill=\"#e07a1f\">max {}/day</text>",
            grouped(max_tasks.max(0)),
            WIDTH - RIGHT,
            escape(&money(max_amount, currency))
        ));
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(i: i64, tasks: i64, amount: i64) -> DayUsage {
        DayUsage {
            day_start: 1_795_219_200_000 + i * 86_400_000,
            completed_tasks: tasks,
            amount,
        }
    }

    #[test]
    fn one_bar_per_day_with_tooltips_and_summary() {
        let days: Vec<DayUsage> = (0..30).map(|i| day(i, i % 3, (i % 3) * 60)).collect();
        let svg = usage_chart_svg(&days, Currency::USD);
        assert_eq!(svg.matches("class=\"bar\"").count(), 30);
        assert!(
            svg.contains("<title>2026-11-22: 1 tasks, 0.60 USD</title>"),
            "{svg}"
        );
        assert!(svg.contains("2026-11-21 to 2026-12-20: 30 tasks, 18.00 USD"));
        assert!(svg.contains("<polyline"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(!svg.contains("style="));
    }

    #[test]
    fn empty_and_zero_ranges_render() {
        let zero: Vec<DayUsage> = (0..7).map(|i| day(i, 0, 0)).collect();
        let svg = usage_chart_svg(&zero, Currency::USD);
        assert!(svg.contains("No completed live tasks in this range"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        let none = usage_chart_svg(&[], Currency::USD);
        assert!(none.contains("No completed live tasks"));
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("a<b&\"c\">"), "a&lt;b&amp;&quot;c&quot;&gt;");
    }
}
