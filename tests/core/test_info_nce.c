/*
 * test_info_nce.c - tests of core/info_nce.c: every variant and option
 * against PyTorch 1.13.1 reference values, the note's cross_entropy formula,
 * a zero vector through F.normalize, finite differences of all gradients,
 * bit-identity across executors, and the workspace bounds.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "info_nce.h"
#include "loss.h"
#include "testutil.h"

enum neg_mode { NEG_NONE, NEG_UNPAIRED, NEG_PAIRED };

/* Shapes of the reference inputs: N = 3 pairs, D = 4, M = 2 negatives. */
#define RN 3
#define RD 4
#define RM 2

/*
 * Reference inputs and values: printed by the generator at the end of this
 * file, run with /usr/bin/python3 (torch 1.13.1, CPU, float64); every number
 * is Python's repr(), so it reads back to the same double. The generator
 * writes the variants with F.normalize, matmul and F.cross_entropy the way
 * docs/api.md states them; 'none' cases backpropagate W[:count], 'mean' cases
 * call loss.mean().backward(). Q_ZERO is Q with row 1 set to zero, Q_EPS
 * with row 1 set to (1e-12, 0, 0, 0), whose norm is exactly eps.
 */
static const double Q[] = {
    0.04613046189666927, 0.4024028259218943,  -1.0115290977852014,
    0.21673823500721032, -0.6122731137752989, 0.5036107344609205,
    0.23096681302987684, 0.6930773457385613,  -0.26686056464657576,
    2.178465792724374,   0.10213729791300204, -0.25900969568042037};
static const double K[] = {
    -0.15490040261535812,  -1.3705889548816619,  -0.13192042545553423,
    0.8848397840872128,    -0.26107681328721066, 0.6104170767420556,
    -0.009842321592534337, -1.4473403365517261,  -0.20389927856298526,
    0.8737533428348121,    -0.6816109647003683,  0.633869379256177};
static const double NEG_U[] = {0.19220226609716579, 0.09182223101287502,
                               -0.8624942364154993, 0.15959067332786864,
                               0.8184132253293068,  -0.7648915320585159,
                               0.8041676286160527,  -0.13831909942335646};
static const double NEG_P[] = {
    -1.7855579594264657,  -0.9354223769031235, 0.8843457838969405,
    1.5818024921874976,   0.10960630490351336, 0.10096570098112953,
    -0.16556798939115777, 0.32106405196708904, 3.157960902699555,
    -0.873610797596598,   1.3865434282975222,  1.456638408205674,
    0.33304918318233323,  -1.8783812338824784, -0.5406878978026728,
    0.48790569262879774,  -0.2758196031728559, 1.513651921827048,
    -0.21114059011945208, 1.8952062487204604,  -0.5659701878579266,
    0.093599708472826,    0.01627441522879778, -1.5739970159086205};
static const double Q_ZERO[] = {0.04613046189666927,
                                0.4024028259218943,
                                -1.0115290977852014,
                                0.21673823500721032,
                                0.0,
                                0.0,
                                0.0,
                                0.0,
                                -0.26686056464657576,
                                2.178465792724374,
                                0.10213729791300204,
                                -0.25900969568042037};
static const double Q_EPS[] = {0.04613046189666927,
                               0.4024028259218943,
                               -1.0115290977852014,
                               0.21673823500721032,
                               1e-12,
                               0.0,
                               0.0,
                               0.0,
                               -0.26686056464657576,
                               2.178465792724374,
                               0.10213729791300204,
                               -0.25900969568042037};

/* Upstream gradient of the 'none' reference cases (W[:count]). */
static const double W[] = {0.5, -1.25, 2.0, 0.75, -0.5, 1.5};

struct nce_ref {
    const char *name;
    enum loss_nce_variant variant;
    bool normalize, mask_self;
    enum neg_mode neg;
    double tau;
    bool mean;           /* reduction 'mean': g = 1/count, gstride 0 */
    const double *query; /* Q, or Q with row 1 zero or of norm eps */
    double out[2 * RN];
    double gq[RN * RD], gk[RN * RD], gn[RN * RM * RD];
};

static const struct nce_ref refs[] = {
    {"pairs_norm",
     LOSS_NCE_PAIRS,
     true,
     false,
     NEG_NONE,
     0.1,
     false,
     Q,
     {9.41791092977897, 9.212448483842945, 0.31485248614503736},
     {-0.46170645897411067, 5.258127903369735, 1.8471131286383637,
      -1.0435543070437316, -6.1298115769180574, 1.6272377841512426,
      8.31426683465109, -9.368266024096902, -0.04451339007836663,
      -0.4752247407288429, 1.2834866501910998, -3.4450066142175313},
     {-0.08041724367926123, -0.7849461565326548, 2.796606657366938,
      -0.8129897283202113, -4.990463422343385, 7.296025333969555,
      1.8330317745642148, 3.9648390293514044, 5.318284013131686,
      -3.6841299381718278, -8.538966690198453, -2.392982293362051},
     {0}},
    {"pairs_raw_t1",
     LOSS_NCE_PAIRS,
     false,
     false,
     NEG_NONE,
     1.0,
     false,
     Q,
     {1.8314220431909254, 1.8999769262126804, 0.7216630501523753},
     {-0.0259668821718464, 0.9175825861953989, -0.16747052067925566,
      -0.30164454587589046, -0.07627620341594143, 0.4297731748574114,
      0.5402896683399533, -2.2917607726303153, -0.05802507729356434,
      -0.284917389004188, 0.6897804577865013, -2.1230277900622343},
     {0.17233338017730615, -0.31263315607645725, 0.35244270903124153,
      -0.31202947055831215, -0.9189704930536149, 2.7974209649733,
      0.25441523444483316, 0.49276650386317744, 0.746637112876309,
      -2.4847878088968436, -0.6068579434760748, -0.18073703330486526},
     {0}},
    {"pairs_raw_t05",
     LOSS_NCE_PAIRS,
     false,
     false,
     NEG_NONE,
     0.5,
     false,
     Q,
     {2.9398717612791265, 2.9864831158695284, 0.7436410328748567},
     {-0.050599025480723536, 2.1063769867216116, -0.4713895553146487,
      -0.3902438044601275, -0.1534139747006206, 0.18486754888014167,
      1.3962864136201696, -5.031031196190931, -0.11997499055577798,
      -0.5528102786818226, 1.409680778225555, -4.367137423527211},
     {0.17725101503069865, -0.5626557490517824, 0.8747014017543552,
      -0.45543773544716226, -2.010030501490916, 5.7962280216438655,
      0.6884602009454226, 1.1176394938072298, 1.832779486460217,
      -5.233572272592083, -1.5631616026997777, -0.6622017583600672},
     {0}},
    {"pairs_norm_mean",
     LOSS_NCE_PAIRS,
     true,
     false,
     NEG_NONE,
     0.1,
     true,
     Q,
     {9.41791092977897, 9.212448483842945, 0.31485248614503736},
     {-0.30780430598274044, 3.5054186022464893, 1.2314087524255757,
      -0.6957028713624875, 1.6346164205114817, -0.4339300757736647,
      -2.2171378225736236, 2.498204273092508, -0.00741889834639444,
      -0.07920412345480717, 0.21391444169851662, -0.5741677690362553},
     {-0.06222971635975362, -0.5163071220847814, 1.8676431596890475,
      -0.5321912228837953, 1.2748099590118827, -0.7814991734213506,
      -0.4168898304682789, -0.5567181252623736, -0.7588428633633498,
      -0.740898302249221, -0.11907699271182026, 0.6491411093486799},
     {0}},
    {"symmetric_norm",
     LOSS_NCE_SYMMETRIC,
     true,
     false,
     NEG_NONE,
     0.1,
     false,
     Q,
     {5.443370986886476, 8.692770239181185, 1.3240118734375768},
     {-1.454158142535498, 6.73146553186465, 2.8077956548416134,
      0.9157924519794416, -5.04563039255427, 2.7719569192390425,
      3.7497547657737273, -7.721158442413512, 0.6149773261173443,
      -0.25765664880816885, 2.990031409569564, -1.621621392347041},
     {-0.7402660418037168, -0.15188184954205458, 2.726227921176829,
      0.04160081244670191, -4.777192295976403, 2.853013280036256,
      1.5726474121545366, 2.054294757583698, 3.519165424851017,
      -6.994429307084985, -9.37463602487009, 0.6927398440463483},
     {0}},
    {"symmetric_raw",
     LOSS_NCE_SYMMETRIC,
     false,
     false,
     NEG_NONE,
     0.7,
     false,
     Q,
     {1.5696759039717558, 2.8710817914085194, 0.6410900600085289},
     {-0.04696173424394441, 1.280454744170213, -0.37032149827100763,
      -0.041409066334853036, -0.3600877047065886, 0.6484858595097277,
      0.2458256945483014, -2.6435376697923556, 0.2913907967921845,
      -1.2207154582936048, 0.9179774970315212, -0.7549915546589554},
     {-0.03885375775934985, -0.1948794148902351, 0.5392411176537454,
      -0.0995235537710401, -1.0052066036585683, 0.6920111341353968,
      0.3902773611795174, 1.1720327872709497, 0.6273178564630707,
      -2.869183653190629, -0.8804236924002112, 0.21895972021053348},
     {0}},
    {"ntx_mask_norm",
     LOSS_NCE_NT_XENT,
     true,
     true,
     NEG_NONE,
     0.1,
     false,
     Q,
     {9.42365192712616, 9.427805311016144, 0.5067772212873741,
      1.5397569084139995, 8.174436461864557, 2.333240397045617},
     {-2.0941038510191166, 13.94541175048936, 5.335544396735831,
      -0.5444941881491046, -7.44431885708767, 1.7915636804630228,
      5.8099456790601876, -9.814361509158061, 0.7272581617340228,
      -0.751234812950293, 5.229059011836884, -5.005735034348499},
     {-2.1042920670154324, -0.0438699016052535, 6.6256360460528105,
      0.5514822501107316, -6.7933203481014015, 6.190951154150062,
      2.3308418372702984, 3.8205940229105484, 5.720887720402304,
      -12.708537824782386, -15.986287098612438, 2.1679288503041607},
     {0}},
    {"ntx_nomask_norm",
     LOSS_NCE_NT_XENT,
     true,
     false,
     NEG_NONE,
     0.1,
     false,
     Q,
     {11.42360736627333, 13.158983437132786, 4.0029723897408775,
      11.278245904974662, 13.141713457228004, 4.149653837678528},
     {0.5456756453617233, 9.774793447748468, 2.7230432064170946,
      -5.555731031425237, -5.545842157324685, 8.626187027253359,
      0.9845417607391562, -11.49540805557065, 1.3099049757569474,
      -1.2838057521534365, 8.62383871169489, -8.746673777718762},
     {-0.2240825146612888, -1.9438095058740466, 7.0006243378637265,
      -2.0064072634472683, -6.8088347077695275, 6.50450246641031,
      2.3363130358057593, 3.955595902420743, 1.0225570284969945,
      -15.741718530307999, -10.65928224182532, 10.565890064316495},
     {0}},
    {"ntx_mask_raw",
     LOSS_NCE_NT_XENT,
     false,
     true,
     NEG_NONE,
     0.5,
     false,
     Q,
     {3.3090195084596044, 3.9131142136293953, 0.9256454318662866,
      1.1481679640601081, 4.672056490835917, 0.4256038354299528},
     {-0.00800896453229323, 4.749335940725174, -0.5690879376058344,
      -1.193826588938001, -0.6687281827084892, -1.0677738359039006,
      0.21706287791816464, -4.537865669050275, 1.0525721955031464,
      -2.7955890341876173, 1.6942987452722524, -3.852645211062412},
     {-0.5204759306666865, -0.23292955706971746, 1.9487114640720895,
      0.1518702248920547, -2.323654758567999, 3.480366525743788,
      0.8350158930076286, 2.2057705791096085, 1.2097589172394223,
      -7.64423153470063, -1.7619279436142792, 1.08137782105112},
     {0}},
    {"ntx_nomask_raw_mean",
     LOSS_NCE_NT_XENT,
     false,
     false,
     NEG_NONE,
     0.5,
     true,
     Q,
     {3.832686705685178, 4.382509797309808, 6.345214080140774,
      5.881450856772015, 6.353503606107768, 0.8881219570594745},
     {0.04797876252141492, 1.2798309998257473, -0.28885493135939977,
      -0.4286472308436421, -0.02898355902806752, 0.03643994464718833,
      -0.01643724801655502, 1.1774019852815827, -0.15091433782676356,
      1.0952816312943843, 0.4057145091548834, -0.5061218608672828},
     {-0.14135558455176386, -1.1620900116622024, 0.5806017976052062,
      0.4524861308439826, 0.24756018821758408, 0.13524587808831384,
      -0.1659091394589851, -1.2550058539224196, 0.04204352076552114,
      -0.8259004291271408, -0.36814358787049073, 0.38888252384581135},
     {0}},
    {"unpaired_norm",
     LOSS_NCE_PAIRS,
     true,
     false,
     NEG_UNPAIRED,
     0.1,
     false,
     Q,
     {10.780220696852155, 1.7135772212529796, 0.0026595988810026996},
     {1.1809087304938408, 2.4524683896180015, 0.4781674055978238,
      -2.573038537795059, -4.425998808846667, 3.45037735108169,
      8.951951324054487, -9.400351709630046, 0.007202986468222945,
      0.000232702164875951, -0.009520052503243955, -0.009218233172219377},
     {-0.08965615515319966, -0.7775039279406393, 2.8002460280329378,
      -0.8025367257610296, -3.9855561386276768, 3.7794742571793685,
      1.3662327285283957, 2.3036358052444124, 0.0010500628673168885,
      -0.023720869221504626, -0.014955174291688357, 0.016954100345910012},
     {5.004149269998556, -3.830260056214741, -0.643193485580408,
      -7.299026038201106, 0.04580563053486374, -0.0312033363514424,
      -0.09464289348895086, -0.10666386429933346}},
    {"unpaired_raw",
     LOSS_NCE_PAIRS,
     false,
     false,
     NEG_UNPAIRED,
     0.3,
     false,
     Q,
     {3.974316901074113, 1.5992357948052467, 0.003408106366534747},
     {0.568676894732647, 2.390120945241672, -1.1919632606009274,
      -1.1865301153194625, -1.7299217502091078, 2.0291174533432206,
      2.24173151762576, -5.236680646811206, 0.009021178117334626,
      -0.017786119763487637, -0.004004887586087238, -0.010775108207329338},
     {-0.0754392867922111, -0.6580680301601278, 1.6542005123949137,
      -0.3544421017541803, -2.0356783337198485, 1.6743989531885195,
      0.7679157005509064, 2.304335278765542, 0.00605294087033234,
      -0.0494120390132042, -0.0023166818437249863, 0.005874867179692431},
     {1.887098982715569, -0.788485430340715, -2.335919734375217,
      -1.7094518458747503, 0.21796569692615814, -0.1784334536744711,
      -0.08387979672687837, -0.2463161983163037}},
    {"paired_norm",
     LOSS_NCE_PAIRS,
     true,
     false,
     NEG_PAIRED,
     0.1,
     false,
     Q,
     {7.791649220159996, 1.156499712724306, 0.39828687085695474},
     {1.5399668636490684, 3.6432345455932227, 1.6462314302556798,
      0.5911450465545648, -7.208534158759111, 5.8091468706887905,
      -2.1103112308429326, -9.88595076713647, 0.07668829042708887,
      0.019829640700811724, 1.3330009531913123, 0.6134219358878127},
     {-0.08962097658220261, -0.7771988571166359, 2.799147289708301,
      -0.8022218327663806, -3.332306501669476, 3.160002318880337,
      1.1423013616454558, 1.926060079017663, 0.12988303129744017,
      -2.9340513748205925, -1.8498162643816691, 2.0970648657203066},
     {-1.7137240876740865e-05, 2.3523062541160837e-05, -7.646752250873707e-05,
      3.7317044100894894e-05,  -1.8053015532948284,    2.4802635751727884,
      -8.115430711363095,      -4.348679509155464,     0.6842044510826435,
      -0.776733037575382,      -0.5780404840282454,    -1.39895737236447,
      0.3132560478582065,      -0.04760351196687557,   -0.06382924542988982,
      -0.4678340884107285,     -0.15791540647076785,   1.6985221583248191,
      0.23614694428684985,     -1.3532391477295556,    -0.007742775032366023,
      0.14784989278418129,     0.0067096799018820305,  0.011645563894631627}},
    {"paired_raw",
     LOSS_NCE_PAIRS,
     false,
     false,
     NEG_PAIRED,
     0.3,
     false,
     Q,
     {1.8966186822217428, 0.371798514325713, 3.805247117027247},
     {0.3391271909048684, 2.0650730192576847, -0.027964452142229174,
      -0.7749573631784359, -2.2733866944355983, 2.68475218772231,
      -0.33976362435670165, -3.0197855437199927, -0.4705548396563346,
      4.162462447262108, 3.068047422249681, 8.200787790571367},
     {-0.06534570490674599, -0.5700202260110334, 1.432872752857289,
      -0.30701866325367805, -0.7921458123585305, 0.6515607584043426,
      0.2988199050702687, 0.8966885932359487, 1.7394795362748983,
      -14.199912497140653, -0.6657624360698498, 1.688305148906389},
     {0.0008655098284061087, 0.007549969943807106,  -0.018978530451590123,
      0.004066490229608514,  0.0644801950783399,    0.5624702560672263,
      -1.4138942224056992,   0.30295217302406957,   0.32613377746833794,
      -0.2682536069412007,   -0.1230269262336111,   -0.3691750099064456,
      0.46601203489019216,   -0.38330715146314154,  -0.1757929788366574,
      -0.5275135833295026,   -1.7378645221012783,   14.186728634112201,
      0.6651443110801077,    -1.686737647427919,    -0.0016150141736197205,
      0.013183863028451134,  0.0006181249897420346, -0.001567501478469861}},
    {"pairs_zero_query",
     LOSS_NCE_PAIRS,
     true,
     false,
     NEG_NONE,
     0.1,
     false,
     Q_ZERO,
     {9.41791092977897, 1.0986122886681098, 0.31485248614503736},
     {-0.46170645897411067, 5.258127903369735, 1.8471131286383637,
      -1.0435543070437316, -316554867083.8329, 3852089693000.0874,
      2479603736268.841, -11859776895671.375, -0.04451339007836663,
      -0.4752247407288429, 1.2834866501910998, -3.4450066142175313},
     {-0.08965141603328564, -0.7774560765784675, 2.800076672730292,
      -0.8024870249934284, -0.1292101756296385, 2.686133799507192,
      0.16661357436490482, 1.155053732650911, 0.76366957641169,
      -3.1387040347219135, -3.382021776209577, 0.9354319865934535},
     {0}},
    {"ntx_zero_query",
     LOSS_NCE_NT_XENT,
     true,
     true,
     NEG_NONE,
     0.1,
     false,
     Q_ZERO,
     {9.423321855056814, 1.6094379124341003, 0.3470550090159425,
      1.591271681363092, 5.045884194327636, 2.226231125773708},
     {-2.356313679205708, 14.557333115473202, 5.647773792326611,
      -0.16760594414427832, -2147806199272.1482, -1770035404870.453,
      3145148723170.89, -13421133872968.23, 0.747324536673635,
      -0.7081276114437225, 4.563583448709261, -4.926267878278195},
     {-0.2505246742386217, -1.5663191577781688, 5.983307323063118,
      -1.57798698453146, -0.007026731171740363, 0.13661133929279473,
      0.02267625514884903, 0.058729257950409904, 2.7426074187528378,
      -11.514547464625295, -12.32755588446719, 3.4983433910381043},
     {0}},
    {"pairs_eps_query",
     LOSS_NCE_PAIRS,
     true,
     false,
     NEG_NONE,
     0.1,
     false,
     Q_EPS,
     {9.41791092977897, 1.4043278799134664, 0.31485248614503736},
     {-0.46170645897411067, 5.258127903369735, 1.8471131286383637,
      -1.0435543070437316, 0.0, 6546268427442.241, 2158625418999.952,
      -13491147859100.434, -0.04451339007836663, -0.4752247407288429,
      1.2834866501910998, -3.4450066142175313},
     {-3.805757179384634, -0.48294742204311114, 2.828423396865389,
      -0.9926191381720144, 5.634089145237574, 3.0583617701111265,
      0.16061179700314782, 0.2724759399009868, -1.7002793551523414,
      -3.408039940243604, -3.1719140748811094, 0.7400407075277428},
     {0}},
    {"unpaired_eps_query",
     LOSS_NCE_PAIRS,
     true,
     false,
     NEG_UNPAIRED,
     0.1,
     false,
     Q_EPS,
     {10.780220696852155, 7.568062959032743, 0.0026595988810026996},
     {1.1809087304938408, 2.4524683896180015, 0.4781674055978238,
      -2.573038537795059, 0.0, 11501685888898.18, -6896848056657.608,
      -10186103947375.172, 0.007202986468222945, 0.000232702164875951,
      -0.009520052503243955, -0.009218233172219377},
     {-0.08965615515319966, -0.7775039279406393, 2.8002460280329378,
      -0.8025367257610296, 7.63494499723838, 0.4931099225932747,
      -0.007950869370392147, -1.1691971088560054, 0.0010500628673168885,
      -0.023720869221504626, -0.014955174291688357, 0.016954100345910012},
     {-1.1939646703891271, 1.5354035343617065, -0.07397176808947759,
      0.1547603823515491, -5.73954471205932, -2.8722763407181913,
      3.0198815328305533, -0.5194400362108128}},
};

#define NREFS (sizeof(refs) / sizeof(refs[0]))

/* Outputs of one loss_nce_run() call, sized from its arguments. */
struct nce_res {
    size_t samples, nq, nneg; /* doubles of out, of gq/gk, of gn */
    double *out, *gq, *gk, *gn;
    unsigned warn;
};

static size_t neg_vectors(const struct loss_nce_args *a)
{
    if (a->negative_keys == NULL)
        return 0;
    return a->paired ? a->n * a->m : a->m;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);

    ck_assert_ptr_nonnull(p);
    return p;
}

/*
 * Runs the kernel with a workspace sized by loss_nce_workspace() for ex;
 * gradients of every input when g is not NULL. The workspace is filled with
 * NaN first, so reading a region before writing it shows.
 */
static void nce_eval(const struct loss_nce_args *a, const double *g,
                     size_t gstride, const struct loss_exec *ex,
                     struct nce_res *r)
{
    size_t ws;
    double *work;

    memset(r, 0, sizeof(*r));
    r->samples = loss_nce_samples(a);
    r->nq = a->n * a->d;
    r->nneg = neg_vectors(a) * a->d;
    ck_assert(loss_nce_workspace(a, loss_exec_slots(ex), g != NULL, &ws));
    work = xcalloc(ws, sizeof(*work));
    for (size_t i = 0; i < ws; i++)
        work[i] = NAN;
    r->out = xcalloc(r->samples, sizeof(double));
    if (g != NULL) {
        r->gq = xcalloc(r->nq, sizeof(double));
        r->gk = xcalloc(r->nq, sizeof(double));
        if (a->negative_keys != NULL)
            r->gn = xcalloc(r->nneg, sizeof(double));
    }
    r->warn =
        loss_nce_run(a, r->out, g, gstride, r->gq, r->gk, r->gn, work, ex);
    free(work);
}

static void nce_res_free(struct nce_res *r)
{
    free(r->out);
    free(r->gq);
    free(r->gk);
    free(r->gn);
}

static void check_agree(const char *name, const char *what, const double *x,
                        const double *ref, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(agree(x[i], ref[i]), "%s: %s[%zu] = %.17g, torch %.17g",
                      name, what, i, x[i], ref[i]);
}

/* Every variant and option against PyTorch, values and gradients. */
START_TEST(test_reference)
{
    for (size_t c = 0; c < NREFS; c++) {
        const struct nce_ref *t = &refs[c];
        struct loss_nce_args a = {
            .n = RN,
            .d = RD,
            .query = t->query,
            .positive_key = K,
            .normalize = t->normalize,
            .mask_self = t->mask_self,
            .variant = t->variant,
            .temperature = t->tau,
        };
        struct nce_res r;
        double gmean;

        if (t->neg != NEG_NONE) {
            a.m = RM;
            a.paired = t->neg == NEG_PAIRED;
            a.negative_keys = a.paired ? NEG_P : NEG_U;
        }
        gmean = 1.0 / (double)loss_nce_samples(&a);
        nce_eval(&a, t->mean ? &gmean : W, t->mean ? 0 : 1, NULL, &r);
        check_agree(t->name, "loss", r.out, t->out, r.samples);
        check_agree(t->name, "grad_query", r.gq, t->gq, r.nq);
        check_agree(t->name, "grad_positive", r.gk, t->gk, r.nq);
        if (t->neg != NEG_NONE)
            check_agree(t->name, "grad_negative", r.gn, t->gn, r.nneg);
        /* a norm at or below eps warns (the eps row projects, see below) */
        ck_assert_msg(r.warn == (t->query != Q ? LOSS_WARN_NORMALIZE_EPS : 0u),
                      "%s: warnings 0x%x", t->name, r.warn);
        if (t->query == Q_ZERO) {
            /* g / eps: the zero row's gradient is on the 1e12 scale */
            for (size_t k = 0; k < RD; k++)
                ck_assert_msg(fabs(r.gq[RD + k]) > 1e10,
                              "%s: grad_query[1][%zu] = %g", t->name, k,
                              r.gq[RD + k]);
        }
        nce_res_free(&r);
    }
}
END_TEST

/*
 * pairs with normalize=false and temperature=1 is the note's
 * cross_entropy(q @ k.T, arange(N)) per sample, here written out with
 * plain loops (log-sum-exp of row i minus its diagonal).
 */
START_TEST(test_pairs_is_cross_entropy)
{
    enum { N = 9, D = 5 };
    double q[N * D], k[N * D];
    struct test_rng rng;
    struct loss_nce_args a = {.n = N,
                              .d = D,
                              .query = q,
                              .positive_key = k,
                              .variant = LOSS_NCE_PAIRS,
                              .temperature = 1.0};
    struct nce_res r;

    test_rng_seed(&rng, 7);
    for (size_t i = 0; i < N * D; i++) {
        q[i] = test_rng_normal(&rng);
        k[i] = test_rng_normal(&rng);
    }
    nce_eval(&a, NULL, 0, NULL, &r);
    for (size_t i = 0; i < N; i++) {
        double s[N], mx = -INFINITY, sum = 0.0;

        for (size_t j = 0; j < N; j++) {
            s[j] = 0.0;
            for (size_t c = 0; c < D; c++)
                s[j] += q[i * D + c] * k[j * D + c];
            mx = fmax(mx, s[j]);
        }
        for (size_t j = 0; j < N; j++)
            sum += exp(s[j] - mx);
        ck_assert_msg(agree(r.out[i], mx + log(sum) - s[i]),
                      "row %zu: %.17g vs %.17g", i, r.out[i],
                      mx + log(sum) - s[i]);
    }
    nce_res_free(&r);
}
END_TEST

/* One configuration of the finite-difference and bit-identity tables. */
struct nce_cfg {
    const char *name;
    enum loss_nce_variant variant;
    bool normalize, mask_self;
    enum neg_mode neg;
    double tau;
    unsigned long long seed;
};

static const struct nce_cfg cfgs[] = {
    {"pairs_norm", LOSS_NCE_PAIRS, true, false, NEG_NONE, 0.1, 101},
    {"pairs_raw", LOSS_NCE_PAIRS, false, false, NEG_NONE, 0.5, 102},
    {"symmetric_norm", LOSS_NCE_SYMMETRIC, true, false, NEG_NONE, 0.1, 103},
    {"symmetric_raw", LOSS_NCE_SYMMETRIC, false, false, NEG_NONE, 0.7, 104},
    {"ntx_mask_norm", LOSS_NCE_NT_XENT, true, true, NEG_NONE, 0.1, 105},
    {"ntx_nomask_norm", LOSS_NCE_NT_XENT, true, false, NEG_NONE, 0.2, 106},
    {"ntx_mask_raw", LOSS_NCE_NT_XENT, false, true, NEG_NONE, 0.5, 107},
    {"ntx_nomask_raw", LOSS_NCE_NT_XENT, false, false, NEG_NONE, 0.5, 108},
    {"unpaired_norm", LOSS_NCE_PAIRS, true, false, NEG_UNPAIRED, 0.1, 109},
    {"unpaired_raw", LOSS_NCE_PAIRS, false, false, NEG_UNPAIRED, 0.3, 110},
    {"paired_norm", LOSS_NCE_PAIRS, true, false, NEG_PAIRED, 0.1, 111},
    {"paired_raw", LOSS_NCE_PAIRS, false, false, NEG_PAIRED, 0.3, 112},
};

#define NCFGS (sizeof(cfgs) / sizeof(cfgs[0]))

/* Random inputs of one configuration; release with nce_input_free(). */
struct nce_input {
    struct loss_nce_args a;
    double *q, *k, *neg, *g;
};

static void nce_input_init(struct nce_input *in, const struct nce_cfg *c,
                           size_t n, size_t d, size_t m)
{
    struct test_rng rng;
    size_t nneg, ns;

    memset(in, 0, sizeof(*in));
    in->a.n = n;
    in->a.d = d;
    in->a.normalize = c->normalize;
    in->a.mask_self = c->mask_self;
    in->a.variant = c->variant;
    in->a.temperature = c->tau;
    if (c->neg != NEG_NONE) {
        in->a.m = m;
        in->a.paired = c->neg == NEG_PAIRED;
    }
    nneg = c->neg == NEG_NONE ? 0 : (in->a.paired ? n * m : m) * d;
    ns = c->variant == LOSS_NCE_NT_XENT && c->neg == NEG_NONE ? 2 * n : n;
    in->q = xcalloc(n * d, sizeof(double));
    in->k = xcalloc(n * d, sizeof(double));
    in->neg = xcalloc(nneg, sizeof(double));
    in->g = xcalloc(ns, sizeof(double));
    test_rng_seed(&rng, c->seed);
    for (size_t i = 0; i < n * d; i++) {
        in->q[i] = test_rng_normal(&rng);
        in->k[i] = test_rng_normal(&rng);
    }
    for (size_t i = 0; i < nneg; i++)
        in->neg[i] = test_rng_normal(&rng);
    for (size_t i = 0; i < ns; i++)
        in->g[i] = 2.0 * test_rng_uniform(&rng) - 0.5;
    in->a.query = in->q;
    in->a.positive_key = in->k;
    in->a.negative_keys = c->neg == NEG_NONE ? NULL : in->neg;
}

static void nce_input_free(struct nce_input *in)
{
    free(in->q);
    free(in->k);
    free(in->neg);
    free(in->g);
}

/* sum_i g_i * loss_i, the function whose gradient the kernel computes */
static double nce_objective(void *ctx)
{
    const struct nce_input *in = ctx;
    struct nce_res r;
    double s = 0.0;

    nce_eval(&in->a, NULL, 0, NULL, &r);
    for (size_t i = 0; i < r.samples; i++)
        s += in->g[i] * r.out[i];
    nce_res_free(&r);
    return s;
}

static void fd_check(struct nce_input *in, const char *name, const char *what,
                     double *x, const double *grad, size_t count,
                     unsigned long long seed)
{
    for (size_t i = 0; i < count; i++) {
        double num = fd_partial(nce_objective, in, x, i, FD_STEP);

        ck_assert_msg(fd_agree(grad[i], num),
                      "%s (seed %llu): d/d%s[%zu] analytic %.12g, numeric "
                      "%.12g",
                      name, seed, what, i, grad[i], num);
    }
}

/* Finite differences of every gradient of every configuration. */
START_TEST(test_finite_differences)
{
    for (size_t c = 0; c < NCFGS; c++) {
        struct nce_input in;
        struct nce_res r;

        fprintf(stderr, "fd %s: seed %llu\n", cfgs[c].name, cfgs[c].seed);
        nce_input_init(&in, &cfgs[c], 5, 3, 4);
        nce_eval(&in.a, in.g, 1, NULL, &r);
        fd_check(&in, cfgs[c].name, "query", in.q, r.gq, r.nq, cfgs[c].seed);
        fd_check(&in, cfgs[c].name, "positive_key", in.k, r.gk, r.nq,
                 cfgs[c].seed);
        if (cfgs[c].neg != NEG_NONE)
            fd_check(&in, cfgs[c].name, "negative_keys", in.neg, r.gn, r.nneg,
                     cfgs[c].seed);
        nce_res_free(&r);
        nce_input_free(&in);
    }
}
END_TEST

static void same_bits(const char *name, const char *exec, const char *what,
                      const double *x, const double *y, size_t n)
{
    ck_assert_msg(memcmp(x, y, n * sizeof(*x)) == 0,
                  "%s: %s differs between serial and %s", name, what, exec);
}

/*
 * Serial against two- and three-thread executors with shuffled block order,
 * at several sizes because the kernel picks its block rows from the shapes
 * (nce_block_rows: at most N/4 rows, at most 512, at least 64). Each size
 * spans several blocks with a partial last one, and is run only for the
 * variants that need it, to keep the test short under the sanitizers.
 */
enum size_for { SIZE_ALL, SIZE_NOT_NTX, SIZE_NTX, SIZE_PAIRS };

static bool size_applies(enum size_for f, const struct nce_cfg *c)
{
    bool ntx = c->variant == LOSS_NCE_NT_XENT && c->neg == NEG_NONE;

    switch (f) {
    case SIZE_NOT_NTX:
        return !ntx;
    case SIZE_NTX:
        return ntx;
    case SIZE_PAIRS:
        return c->variant == LOSS_NCE_PAIRS && c->neg == NEG_NONE;
    default:
        return true;
    }
}

START_TEST(test_bit_identical)
{
    static const struct {
        size_t n, d;
        enum size_for only;
    } sizes[] = {
        /* 64-row blocks: 4 row blocks (7 for nt_xent's 2N), M = 70 is 2 */
        {200, 16, SIZE_ALL},
        /* 256-row blocks: 5 row blocks (unpaired too; paired keeps 64) */
        {1030, 4, SIZE_NOT_NTX},
        /* 256-row blocks of nt_xent's 2N = 1040 rows: 5 blocks */
        {520, 4, SIZE_NTX},
        /* 512-row blocks: 5 blocks */
        {2060, 2, SIZE_PAIRS},
    };
    struct loss_exec *ex[2] = {test_exec_threads(2, 11),
                               test_exec_threads(3, 29)};
    const char *exname[2] = {"2 threads", "3 threads"};

    for (size_t z = 0; z < sizeof(sizes) / sizeof(sizes[0]); z++) {
        for (size_t c = 0; c < NCFGS; c++) {
            struct nce_input in;
            struct nce_res base;

            if (!size_applies(sizes[z].only, &cfgs[c]))
                continue;
            nce_input_init(&in, &cfgs[c], sizes[z].n, sizes[z].d, 70);
            nce_eval(&in.a, in.g, 1, NULL, &base);
            for (size_t e = 0; e < 2; e++) {
                struct nce_res r;
                const char *nm = cfgs[c].name;

                nce_eval(&in.a, in.g, 1, ex[e], &r);
                same_bits(nm, exname[e], "loss", base.out, r.out, r.samples);
                same_bits(nm, exname[e], "grad_query", base.gq, r.gq, r.nq);
                same_bits(nm, exname[e], "grad_positive", base.gk, r.gk, r.nq);
                if (cfgs[c].neg != NEG_NONE)
                    same_bits(nm, exname[e], "grad_negative", base.gn, r.gn,
                              r.nneg);
                ck_assert_uint_eq(base.warn, r.warn);
                nce_res_free(&r);
            }
            nce_res_free(&base);
            nce_input_free(&in);
        }
    }
    test_exec_free(ex[0]);
    test_exec_free(ex[1]);
}
END_TEST

/*
 * nt_xent written out densely, normalize=false: S = z z^T / tau with
 * z = cat(q, k), the diagonal at -inf when masked, loss_r = lse_r - S_rp,
 * G = g (softmax(S) - Y) per row and dz_r = sum_i (G_ri + G_ir) z_i / tau.
 * *ret_spread gets max lse - min lse.
 */
static void ntx_dense(const struct loss_nce_args *a, const double *g,
                      double *out, double *gq, double *gk, double *ret_spread)
{
    size_t n = a->n, d = a->d, rows = 2 * n;
    double *S = xcalloc(rows * rows, sizeof(double));
    double *lse = xcalloc(rows, sizeof(double)), lo = INFINITY, hi = -INFINITY;

#define Z(r) ((r) < n ? a->query + (r)*d : a->positive_key + ((r)-n) * d)
    for (size_t r = 0; r < rows; r++) {
        double mx = -INFINITY, sum = 0.0;

        for (size_t i = 0; i < rows; i++) {
            double dot = 0.0;

            for (size_t c = 0; c < d; c++)
                dot += Z(r)[c] * Z(i)[c];
            S[r * rows + i] =
                a->mask_self && i == r ? -INFINITY : dot / a->temperature;
            mx = fmax(mx, S[r * rows + i]);
        }
        for (size_t i = 0; i < rows; i++)
            sum += exp(S[r * rows + i] - mx);
        lse[r] = mx + log(sum);
        out[r] = lse[r] - S[r * rows + (r < n ? r + n : r - n)];
        lo = fmin(lo, lse[r]);
        hi = fmax(hi, lse[r]);
    }
    for (size_t r = 0; r < rows; r++)
        for (size_t i = 0; i < rows; i++)
            S[r * rows + i] = g[r] * (exp(S[r * rows + i] - lse[r]) -
                                      (i == (r < n ? r + n : r - n)));
    for (size_t r = 0; r < rows; r++) {
        double *dz = r < n ? gq + r * d : gk + (r - n) * d;

        for (size_t c = 0; c < d; c++) {
            double acc = 0.0;

            for (size_t i = 0; i < rows; i++)
                acc += (S[r * rows + i] + S[i * rows + r]) * Z(i)[c];
            dz[c] = acc / a->temperature;
        }
    }
#undef Z
    *ret_spread = hi - lo;
    free(S);
    free(lse);
}

/*
 * nt_xent's backward takes one exponential per logit when the row lse
 * values are close and g is moderate, two otherwise (core/info_nce.c,
 * nce_ntx_factor). Both paths against the dense formula: random inputs
 * (one exponential), one pair scaled so the lse values spread just under
 * and well over the limit of 300, and g scaled by 2^960 (two exponentials;
 * the gradients are compared after dividing by 2^960, exact). The same
 * agreement rule as against PyTorch: both sides are double, only the
 * summation orders differ.
 */
START_TEST(test_ntx_paths)
{
    enum { N = 70, D = 5 };
    /* scale[0] with mask_self, scale[1] without (the self term grows) */
    static const struct {
        const char *name;
        double scale[2], gscale, spread_lo, spread_hi;
    } cases[] = {
        {"plain", {1.0, 1.0}, 1.0, 0.0, 50.0},
        {"spread under 300", {18.0, 3.8}, 1.0, 200.0, 300.0},
        {"spread over 300", {30.0, 6.0}, 1.0, 300.0, 1e9},
        {"g times 2^960", {1.0, 1.0}, 0x1p960, 0.0, 50.0},
    };

    for (size_t m = 0; m < 2; m++) {
        for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
            const struct nce_cfg cfg = {
                "ntx", LOSS_NCE_NT_XENT, false, m == 0, NEG_NONE, 0.5, 201 + m};
            struct nce_input in;
            struct nce_res r;
            double out[2 * N], gq[N * D], gk[N * D], g[2 * N], spread;
            char name[64];

            snprintf(name, sizeof(name), "%s, mask_self %d", cases[c].name,
                     m == 0);
            nce_input_init(&in, &cfg, N, D, 0);
            for (size_t k = 0; k < D; k++) {
                in.q[3 * D + k] *= cases[c].scale[m];
                in.k[3 * D + k] *= cases[c].scale[m];
            }
            for (size_t i = 0; i < 2 * N; i++)
                g[i] = in.g[i] * cases[c].gscale;
            ntx_dense(&in.a, in.g, out, gq, gk, &spread);
            ck_assert_msg(spread >= cases[c].spread_lo &&
                              spread < cases[c].spread_hi,
                          "%s: lse spread %g", name, spread);
            nce_eval(&in.a, g, 1, NULL, &r);
            for (size_t i = 0; i < N * D; i++) {
                r.gq[i] /= cases[c].gscale;
                r.gk[i] /= cases[c].gscale;
            }
            check_agree(name, "loss", r.out, out, 2 * N);
            check_agree(name, "grad_query", r.gq, gq, N * D);
            check_agree(name, "grad_positive", r.gk, gk, N * D);
            nce_res_free(&r);
            nce_input_free(&in);
        }
    }
}
END_TEST

/*
 * Forward only, and gradients of a subset of the inputs, give the same
 * values as the full run (the kernel skips work it is not asked for).
 */
START_TEST(test_partial_gradients)
{
    for (size_t c = 0; c < NCFGS; c++) {
        struct nce_input in;
        struct nce_res full;
        double *out, *gk, *work;
        size_t ws, ns;
        const char *nm = cfgs[c].name;

        nce_input_init(&in, &cfgs[c], 70, 5, 3);
        nce_eval(&in.a, in.g, 1, NULL, &full);
        ns = full.samples;
        ck_assert(loss_nce_workspace(&in.a, 1, true, &ws));
        work = xcalloc(ws, sizeof(double));
        out = xcalloc(ns, sizeof(double));
        gk = xcalloc(full.nq, sizeof(double));
        loss_nce_run(&in.a, out, NULL, 0, NULL, NULL, NULL, work, NULL);
        same_bits(nm, "forward only", "loss", full.out, out, ns);
        loss_nce_run(&in.a, out, in.g, 1, NULL, gk, NULL, work, NULL);
        same_bits(nm, "positive only", "loss", full.out, out, ns);
        same_bits(nm, "positive only", "grad_positive", full.gk, gk, full.nq);
        free(work);
        free(out);
        free(gk);
        nce_res_free(&full);
        nce_input_free(&in);
    }
}
END_TEST

/*
 * nt_xent at N = 20000, D = 128 would need (2N)^2 doubles (12.8 GB) for its
 * logits; the workspace holds the prepared inputs, a few vectors of 2N and
 * one 64 x 2N block per slot (64 rows: a wider block would pass 2^21
 * doubles).
 */
START_TEST(test_workspace_bounds)
{
    const size_t n = 20000, d = 128, block = 64 * 2 * n;
    struct loss_nce_args a = {.n = n,
                              .d = d,
                              .normalize = true,
                              .mask_self = true,
                              .variant = LOSS_NCE_NT_XENT,
                              .temperature = 0.1};
    size_t w1, w4, wf;

    ck_assert(loss_nce_workspace(&a, 1, true, &w1));
    ck_assert(loss_nce_workspace(&a, 4, true, &w4));
    ck_assert(loss_nce_workspace(&a, 1, false, &wf));
    ck_assert_uint_eq(w4 - w1, 3 * block);
    ck_assert_uint_le(w1, 2 * n * d + 4 * 2 * n + block);
    ck_assert_uint_le(wf, w1);
    ck_assert_uint_lt(w1 * sizeof(double), (size_t)100 << 20);

    /*
     * One slot holds one block of logits: rows chosen from the shapes (at
     * most N/4, at most 512, at most 2^21 doubles, at least 64), which the
     * bit-identity sizes above rely on.
     */
    {
        static const struct {
            size_t n;
            enum loss_nce_variant v;
            size_t rows, width;
        } blk[] = {
            {200, LOSS_NCE_PAIRS, 64, 200},
            {1030, LOSS_NCE_PAIRS, 256, 1030},
            {2060, LOSS_NCE_PAIRS, 512, 2060},
            {4096, LOSS_NCE_PAIRS, 512, 4096},
            {520, LOSS_NCE_NT_XENT, 256, 1040},
            {4096, LOSS_NCE_NT_XENT, 256, 8192},
        };

        for (size_t i = 0; i < sizeof(blk) / sizeof(blk[0]); i++) {
            a.n = blk[i].n;
            a.variant = blk[i].v;
            ck_assert(loss_nce_workspace(&a, 1, true, &w1));
            ck_assert(loss_nce_workspace(&a, 2, true, &w4));
            ck_assert_uint_eq(w4 - w1, blk[i].rows * blk[i].width);
        }
        a.variant = LOSS_NCE_NT_XENT;
    }

    /* shape products that overflow size_t are refused */
    a.n = SIZE_MAX / 4;
    ck_assert(!loss_nce_workspace(&a, 1, true, &w1));
    a.n = 10;
    a.m = SIZE_MAX / 8;
    a.negative_keys = a.query = a.positive_key = (const double *)&w1;
    a.paired = true;
    ck_assert(!loss_nce_workspace(&a, 1, true, &w1));
}
END_TEST

/* N = 0 and D = 0 run without touching memory they do not own. */
START_TEST(test_empty)
{
    for (size_t c = 0; c < NCFGS; c++) {
        struct nce_input in;
        struct nce_res r;

        nce_input_init(&in, &cfgs[c], 0, 4, 3);
        nce_eval(&in.a, in.g, 1, NULL, &r);
        ck_assert_uint_eq(r.samples, 0);
        if (r.gn != NULL && !in.a.paired)
            for (size_t i = 0; i < r.nneg; i++)
                ck_assert_msg(r.gn[i] == 0.0, "%s: N = 0", cfgs[c].name);
        nce_res_free(&r);
        nce_input_free(&in);

        /* D = 0: every similarity is 0, so each loss is log(row width) */
        nce_input_init(&in, &cfgs[c], 3, 0, 3);
        nce_eval(&in.a, in.g, 1, NULL, &r);
        for (size_t i = 0; i < r.samples; i++)
            ck_assert_msg(isfinite(r.out[i]) && r.out[i] >= 0.0,
                          "%s: D = 0: loss[%zu] = %g", cfgs[c].name, i,
                          r.out[i]);
        ck_assert_uint_eq(r.warn,
                          cfgs[c].normalize ? LOSS_WARN_NORMALIZE_EPS : 0u);
        nce_res_free(&r);
        nce_input_free(&in);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("info_nce");
    TCase *tc = tcase_create("info_nce");

    loss_blas_init();
    tcase_add_test(tc, test_reference);
    tcase_add_test(tc, test_pairs_is_cross_entropy);
    tcase_add_test(tc, test_finite_differences);
    tcase_add_test(tc, test_bit_identical);
    tcase_add_test(tc, test_ntx_paths);
    tcase_add_test(tc, test_partial_gradients);
    tcase_add_test(tc, test_workspace_bounds);
    tcase_add_test(tc, test_empty);
    suite_add_tcase(s, tc);
    return test_run(s);
}

/*
 * The generator of the reference values (run with /usr/bin/python3):
 *
 * import torch, torch.nn.functional as F
 * torch.manual_seed(1234)
 * N, D, M = 3, 4, 2
 * Q0 = torch.randn(N, D, dtype=torch.float64)
 * K0 = torch.randn(N, D, dtype=torch.float64)
 * NU0 = torch.randn(M, D, dtype=torch.float64)
 * NP0 = torch.randn(N, M, D, dtype=torch.float64)
 * W = torch.tensor([0.5, -1.25, 2.0, 0.75, -0.5, 1.5], dtype=torch.float64)
 *
 * def nce(q, k, neg, variant, normalize, mask_self, paired, tau):
 *     if normalize:
 *         q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
 *         neg = F.normalize(neg, dim=-1) if neg is not None else None
 *     n = q.shape[0]
 *     if neg is not None:
 *         pos = (q * k).sum(dim=1, keepdim=True)
 *         negl = (q.unsqueeze(1) @ neg.transpose(-2, -1)).squeeze(1) if paired
 * else q @ neg.T return F.cross_entropy(torch.cat([pos, negl], 1) / tau,
 *                                torch.zeros(n, dtype=torch.long),
 * reduction='none') if variant == 'pairs': return F.cross_entropy(q @ k.T /
 * tau, torch.arange(n), reduction='none') if variant == 'symmetric': s = q @
 * k.T / tau return (F.cross_entropy(s, torch.arange(n), reduction='none') +
 *                 F.cross_entropy(s.T, torch.arange(n), reduction='none')) / 2
 *     z = torch.cat([q, k])
 *     s = z @ z.T / tau
 *     if mask_self:
 *         s = s.masked_fill(torch.eye(2 * n, dtype=torch.bool), float('-inf'))
 *     lab = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
 *     return F.cross_entropy(s, lab, reduction='none')
 *
 * def arr(t):
 *     return '{' + ', '.join(repr(float(x)) for x in t.flatten()) + '}'
 *
 * print('static const double Q[] = %s;' % arr(Q0))
 * print('static const double K[] = %s;' % arr(K0))
 * print('static const double NEG_U[] = %s;' % arr(NU0))
 * print('static const double NEG_P[] = %s;' % arr(NP0))
 * QROW1 = {'Q': Q0,
 *          'Q_ZERO': torch.cat([Q0[:1], torch.zeros(1, D, dtype=torch.float64),
 * Q0[2:]]), 'Q_EPS': torch.cat([Q0[:1], torch.tensor([[1e-12, 0, 0, 0]],
 * dtype=torch.float64), Q0[2:]])} assert QROW1['Q_EPS'][1].norm().item() ==
 * 1e-12  # exactly eps print('static const double Q_ZERO[] = %s;' %
 * arr(QROW1['Q_ZERO'])) print('static const double Q_EPS[] = %s;' %
 * arr(QROW1['Q_EPS'])) print() cases = [ # name, variant, normalize, mask_self,
 * negatives, tau, mean, query
 *     ('pairs_norm', 'pairs', True, False, None, 0.1, False, 'Q'),
 *     ('pairs_raw_t1', 'pairs', False, False, None, 1.0, False, 'Q'),
 *     ('pairs_raw_t05', 'pairs', False, False, None, 0.5, False, 'Q'),
 *     ('pairs_norm_mean', 'pairs', True, False, None, 0.1, True, 'Q'),
 *     ('symmetric_norm', 'symmetric', True, False, None, 0.1, False, 'Q'),
 *     ('symmetric_raw', 'symmetric', False, False, None, 0.7, False, 'Q'),
 *     ('ntx_mask_norm', 'nt_xent', True, True, None, 0.1, False, 'Q'),
 *     ('ntx_nomask_norm', 'nt_xent', True, False, None, 0.1, False, 'Q'),
 *     ('ntx_mask_raw', 'nt_xent', False, True, None, 0.5, False, 'Q'),
 *     ('ntx_nomask_raw_mean', 'nt_xent', False, False, None, 0.5, True, 'Q'),
 *     ('unpaired_norm', 'pairs', True, False, 'unpaired', 0.1, False, 'Q'),
 *     ('unpaired_raw', 'pairs', False, False, 'unpaired', 0.3, False, 'Q'),
 *     ('paired_norm', 'pairs', True, False, 'paired', 0.1, False, 'Q'),
 *     ('paired_raw', 'pairs', False, False, 'paired', 0.3, False, 'Q'),
 *     ('pairs_zero_query', 'pairs', True, False, None, 0.1, False, 'Q_ZERO'),
 *     ('ntx_zero_query', 'nt_xent', True, True, None, 0.1, False, 'Q_ZERO'),
 *     ('pairs_eps_query', 'pairs', True, False, None, 0.1, False, 'Q_EPS'),
 *     ('unpaired_eps_query', 'pairs', True, False, 'unpaired', 0.1, False,
 * 'Q_EPS'),
 * ]
 * for name, var, norm, mask, negm, tau, mean, qname in cases:
 *     q = QROW1[qname].clone().requires_grad_()
 *     k = K0.clone().requires_grad_()
 *     neg = None
 *     if negm:
 *         neg = (NU0 if negm == 'unpaired' else NP0).clone().requires_grad_()
 *     out = nce(q, k, neg, var, norm, mask, negm == 'paired', tau)
 *     cnt = out.numel()
 *     if mean:
 *         out.mean().backward()
 *     else:
 *         out.backward(W[:cnt])
 *     V = {'pairs': 'LOSS_NCE_PAIRS', 'symmetric': 'LOSS_NCE_SYMMETRIC',
 * 'nt_xent': 'LOSS_NCE_NT_XENT'}[var] NM = {None: 'NEG_NONE', 'unpaired':
 * 'NEG_UNPAIRED', 'paired': 'NEG_PAIRED'}[negm] print('    {"%s", %s, %s, %s,
 * %s, %s, %s, %s,' % (name, V, str(norm).lower(), str(mask).lower(), NM,
 * repr(tau), str(mean).lower(), qname)) print('     %s,' % arr(out.detach()))
 *     print('     %s,' % arr(q.grad))
 *     print('     %s,' % arr(k.grad))
 *     print('     %s},' % (arr(neg.grad) if neg is not None else '{0}'))
 * # the note's formula
 * q = Q0.clone(); k = K0.clone()
 * a = F.cross_entropy(q @ k.T, torch.arange(N), reduction='none')
 * b = nce(q, k, None, 'pairs', False, False, False, 1.0)
 * assert torch.equal(a, b)
 */
