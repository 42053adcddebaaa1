// A thin layer over PLplot (cairo driver) for attnscope's figures: one Canvas per file, panels
// placed in page coordinates, heatmaps with token tick labels, colour bars, line charts.
// Internal to viz/ (PLplot stays out of the public header).
#pragma once

#include <memory>
#include <string>
#include <vector>

class plstream;

namespace attnscope::viz {

enum class Colormap { kViridis, kDiverging };

// Categorical colours (tab10), for lines and classes.
struct Rgb {
  int r, g, b;
};
const std::vector<Rgb>& categorical();
// viridis at t in [0, 1] (clamped), interpolated between matplotlib's stops.
Rgb viridis(double t);

struct Box {  // a panel in normalised page coordinates (0,0 bottom left)
  double x0, x1, y0, y1;
  double w() const { return x1 - x0; }
  double h() const { return y1 - y0; }
};
// rows x cols panels filling `area`, row-major from the top left; gaps as fractions of the page.
std::vector<Box> grid(const Box& area, int rows, int cols, double hgap, double vgap);

struct HeatmapStyle {
  Colormap cmap = Colormap::kViridis;
  double vmin = 0, vmax = 1;
  std::vector<std::string> xlabels, ylabels;  // tick labels (tokens); empty = numeric ticks
  bool y_down = true;                         // row 0 at the top (attention maps: query ↓)
  std::string title, xtitle, ytitle;
  double label_scale = 1.0;                   // tick-label size
  double x0 = 0, y0 = 0;                      // numeric axes: value of the first column / row
};

struct Series {
  std::string name;
  std::vector<double> x, y;  // NaN y = gap
  int color = 0;             // index into categorical()
  bool dashed = false;
  bool points = false;
};

struct LineStyle {
  std::string title, xtitle, ytitle;
  bool fixed_y = false;
  double ymin = 0, ymax = 1;
  bool log_y = false;
  bool legend = true;
  enum class LegendAt { kOutsideRight, kInsideTopLeft, kInsideRight } legend_at = LegendAt::kOutsideRight;
};

class Canvas {
 public:
  // format: "png" or "svg". Written to a temporary file, renamed into place by finish().
  Canvas(const std::string& path, const std::string& format, int width_px, int height_px);
  ~Canvas();
  Canvas(const Canvas&) = delete;
  Canvas& operator=(const Canvas&) = delete;

  void title(const std::string& text, const std::string& subtitle = "");
  void heatmap(const Box& box, const std::vector<float>& m, int rows, int cols, const HeatmapStyle& st);
  void colorbar(const Box& box, Colormap cmap, double vmin, double vmax, const std::string& label);
  void lines(const Box& box, const std::vector<Series>& series, const LineStyle& st);
  // Filled rectangles in a panel with world coordinates [x0,x1] x [y0,y1] (no axes drawn).
  void rect(double x0, double x1, double y0, double y1, const Rgb& c);
  void text(double x, double y, double just, double scale, const std::string& s);  // page coords
  void legend_boxes(const Box& box, const std::vector<std::string>& names, const std::vector<Rgb>& colors);
  plstream& pl();
  void finish();  // ends the plot and moves the file into place

 private:
  std::unique_ptr<plstream> pls_;
  std::string path_, tmp_;
  int width_, height_;
  bool done_ = false;
};

// Text size relative to the figures' base size (1 = tick labels and axis titles).
void set_text_scale(plstream& pl, double scale);

// PLplot treats '#' as its escape character: "C#N" must be drawn as "C##N".
std::string pl_escape(const std::string& s);

}  // namespace attnscope::viz
